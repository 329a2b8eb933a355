"""Shared list claims for produce on several workers: once per change, never twice at once (real S3)."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from reelflow.flows.list_claims import ListClaims
from reelflow.tasks.store import ClipStore


def _claims(server, tmp_path, prefix: str, holder: str = "") -> ListClaims:
    store = ClipStore.from_url(f"s3://{server.bucket}/{prefix}", root=tmp_path / "clips")
    return ListClaims(store, "s3://lists/daily", "final", holder=holder)


def test_one_worker_renders_a_list_once_per_change(s3_credentials, tmp_path, monkeypatch):
    prefix = "claims-" + secrets.token_hex(4)
    a, b = _claims(s3_credentials, tmp_path, prefix, "a"), _claims(s3_credentials, tmp_path, prefix, "b")
    assert a.claim("promo.yaml", "fp1") == "claimed"
    assert b.claim("promo.yaml", "fp1") == "busy"          # no list rendered twice at once
    assert b.claim("teaser.yaml", "fp1") == "claimed"      # other lists are free
    a.release("promo.yaml", rendered="fp1")
    assert b.claim("promo.yaml", "fp1") == "unchanged"     # rendered once per change
    assert b.claim("promo.yaml", "fp2") == "claimed"       # a change renders again
    b.release("promo.yaml")                                # failed: nothing recorded
    assert a.claim("promo.yaml", "fp2") == "claimed"
    monkeypatch.setenv("REELFLOW_LIST_LEASE_S", "0.5")
    assert b.claim("teaser.yaml", "fp9") == "claimed"       # b's own claim, renewed short
    time.sleep(1)
    assert a.claim("teaser.yaml", "fp9") == "claimed"       # b died: its claim expired
    b.release("teaser.yaml", rendered="fp9")                # b is not the holder any more
    assert a.claim("teaser.yaml", "fp9") == "claimed"       # ... so nothing was recorded


def test_racing_workers_one_claim_wins(s3_credentials, tmp_path):
    prefix = "claims-" + secrets.token_hex(4)
    workers = [_claims(s3_credentials, tmp_path / str(i), prefix, f"w{i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda w: w.claim("promo.yaml", "fp1"), workers))
    assert verdicts.count("claimed") == 1 and verdicts.count("busy") == 7, verdicts
