"""ClipStore's public versioned-object API (tasks/_store_s3.py), the one the ledger, the list
claims and the heartbeats use: names under the store's folder, compare-and-swap writes."""

from __future__ import annotations

import secrets

import pytest

from reelflow.errors import WriteConflict
from reelflow.tasks.store import ClipStore


@pytest.fixture()
def store(s3_server, s3_credentials, home, monkeypatch):
    prefix = f"t-{secrets.token_hex(4)}/objects"
    monkeypatch.setenv("REELFLOW_STORE", f"s3://{s3_server.bucket}/{prefix}")
    return ClipStore.default()


def test_read_write_compare_and_swap(store, s3_server):
    assert store.read_object("ledger/a.json") is None
    first = store.write_object("ledger/a.json", b"one", None)          # create-only
    with pytest.raises(WriteConflict, match="changed since it was read"):
        store.write_object("ledger/a.json", b"other", None)              # it exists now
    found = store.read_object("ledger/a.json")
    assert (found.body, found.etag) == (b"one", first)
    second = store.write_object("ledger/a.json", b"two", first)         # still at first: wins
    with pytest.raises(WriteConflict):
        store.write_object("ledger/a.json", b"stale", first)             # first is stale now
    assert store.read_object("ledger/a.json") == (b"two", second)
    raw = s3_server.client().get_object(Bucket=s3_server.bucket,
                                        Key=f"{store.bucket_folder}/ledger/a.json")
    assert raw["Body"].read() == b"two"                                  # under the store's folder
    assert store.object_uri("ledger/a.json") == \
        f"s3://{s3_server.bucket}/{store.bucket_folder}/ledger/a.json"


def test_list_replace_and_age(store):
    store.write_object("ledger/b.json", b"{}", None)
    store.write_object("ledger/claims/ab/abc.json", b"{}", None)
    store.replace_object("heartbeats/run-1", b"1")
    store.replace_object("heartbeats/run-1", b"2")                       # unconditional
    assert sorted(store.list_objects("ledger/")) == ["ledger/b.json", "ledger/claims/ab/abc.json"]
    assert store.read_object("heartbeats/run-1").body == b"2"
    age = store.object_age_s("heartbeats/run-1")
    assert age is not None and -5 < age < 60
    assert store.object_age_s("heartbeats/none") is None
