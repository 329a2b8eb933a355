"""Several machines, one S3 clip store: the spend ledger is shared beside the clips.

Each "machine" is its own REELFLOW_HOME (its own local locks, media cache and clip
cache) talking to the same SeaweedFS bucket and the same emulator account.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import (TEST_KEY, emulator_created, run_cli, sha256, start_standalone_emulator,
                           write_shotlist)

SHOTS = [
    {"id": "harbour", "prompt": "Fishing boats leave a harbour at dawn", "resolution": "540p"},
    {"id": "gulls", "prompt": "Gulls follow a trawler out to sea", "resolution": "540p"},
]


@pytest.fixture()
def account(tmp_path):
    emulator, url = start_standalone_emulator(tmp_path / "account", latency=3)
    yield url
    emulator.send_signal(signal.SIGTERM)
    emulator.wait(timeout=20)


def _machine_env(tmp_path, name, url, prefect_api, s3_server, prefix):
    return {**os.environ, **s3_server.env(), "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url,
            "PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(tmp_path / name),
            "REELFLOW_STORE": f"s3://{s3_server.bucket}/{prefix}"}


def _render(path, env, out):
    return subprocess.Popen([sys.executable, "-m", "reelflow.cli", "render", str(path), "--json",
                             "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _report(run) -> dict:
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    return json.loads(out)


def test_ledger_writes_are_compare_and_swap(s3_server, s3_credentials, home):
    from reelflow.tasks._ledger import Ledger, LedgerConflict, LedgerEntry
    from reelflow.tasks.store import ClipStore

    store = ClipStore.from_url(f"s3://{s3_server.bucket}/cas-{secrets.token_hex(4)}")
    first, second = Ledger.for_store(store), Ledger.for_store(store)
    assert first.read("k") is None and second.read("k") is None
    first.write(LedgerEntry(key="k", generation_id="from-first"))
    with pytest.raises(LedgerConflict):  # it read "absent"; the record exists now
        second.write(LedgerEntry(key="k", generation_id="from-second"))
    assert second.read("k").generation_id == "from-first"
    second.write(LedgerEntry(key="k", generation_id="from-first", sha256="ab" * 32))
    with pytest.raises(LedgerConflict):  # first's version is stale now
        first.write(LedgerEntry(key="k", generation_id="from-first"))
    assert first.read("k").sha256 == "ab" * 32
    assert first.generation_ids() == {"from-first"}
    assert not (home / "ledger" / "k"[:2]).exists()  # records live in S3, not on this disk


def test_second_machine_reuses_what_the_first_paid_for(tmp_path, prefect_api, s3_server, account):
    path = write_shotlist(tmp_path, SHOTS)
    prefix = f"shared-{secrets.token_hex(4)}"
    first = _report(_render(path, _machine_env(tmp_path, "a", account, prefect_api, s3_server,
                                               prefix), tmp_path / "a.mp4"))
    assert first["generated"] == 2 and emulator_created(account) == 2

    second = _report(_render(path, _machine_env(tmp_path, "b", account, prefect_api, s3_server,
                                                prefix), tmp_path / "b.mp4"))
    assert second["generated"] == 0 and emulator_created(account) == 2
    assert [r["generation_id"] for r in second["shot_results"]] == \
        [r["generation_id"] for r in first["shot_results"]]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_server.bucket, Prefix=f"{prefix}/ledger/")["Contents"]]
    claims = [k for k in keys if "/claims/" in k]  # one per generation, naming its key
    assert len(keys) - len(claims) == 2 and len(claims) == 2


def test_two_machines_at_once_pay_once(tmp_path, prefect_api, s3_server, account):
    path = write_shotlist(tmp_path, SHOTS)
    prefix = f"shared-{secrets.token_hex(4)}"
    runs = [_render(path, _machine_env(tmp_path, name, account, prefect_api, s3_server, prefix),
                    tmp_path / f"{name}.mp4") for name in ("a", "b")]
    reports = [_report(run) for run in runs]
    assert emulator_created(account) == 2
    assert sum(r["generated"] for r in reports) == 2  # each shot paid by one machine only


def test_machine_killed_mid_send_another_adopts(tmp_path, prefect_api, s3_server, account):
    """Machine A dies while its creates are in flight. Machine B trusts A's "sending" record
    while it is fresh (REELFLOW_SENDING_LIVE_S), then finds A's generations on the account."""
    httpx.post(f"{account}/_emulator/faults", json={"create_answer_delay": 60}, timeout=10)
    path = write_shotlist(tmp_path, SHOTS)
    prefix = f"shared-{secrets.token_hex(4)}"
    a = _render(path, _machine_env(tmp_path, "a", account, prefect_api, s3_server, prefix),
                tmp_path / "a.mp4")
    deadline = time.monotonic() + 120
    while emulator_created(account) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert emulator_created(account) == 2
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(timeout=10)
    httpx.post(f"{account}/_emulator/faults", json={}, timeout=10)

    env = {**_machine_env(tmp_path, "b", account, prefect_api, s3_server, prefix),
           "REELFLOW_SENDING_LIVE_S": "60"}
    b = _render(path, env, tmp_path / "b.mp4")
    out, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
    assert emulator_created(account) == 2  # adopted, not paid again
    assert json.loads(out)["generated"] == 0
    assert "another machine is sending" in err and "adopted generation" in err
    assert err.count("another machine is sending") == 2  # once per shot, not once per look


def test_corrupt_record_in_s3_is_recovered_from_the_account(tmp_path, prefect_api, s3_server,
                                                            account):
    """A record in the shared ledger is cut short: `plan` names the object in one line and
    works; another machine's render recovers it from the account, pays nothing and writes
    the same bytes."""
    path = write_shotlist(tmp_path, SHOTS)
    prefix = f"shared-{secrets.token_hex(4)}"
    first = _report(_render(path, _machine_env(tmp_path, "a", account, prefect_api, s3_server,
                                               prefix), tmp_path / "a.mp4"))
    client = s3_server.client()
    key = sorted(o["Key"] for o in client.list_objects_v2(
        Bucket=s3_server.bucket, Prefix=f"{prefix}/ledger/")["Contents"] if "/claims/" not in o["Key"])[0]
    body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=body[: len(body) // 2])

    env = _machine_env(tmp_path, "b", account, prefect_api, s3_server, prefix)
    plan = run_cli(["plan", str(path)], env=env)
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    assert plan.stderr.strip().splitlines() == [
        f"Ledger record s3://{s3_server.bucket}/{key} is unreadable (not valid JSON): ignored; "
        "a render looks its generation up on the account"]

    second = _report(_render(path, env, tmp_path / "b.mp4"))
    assert second["generated"] == 0 and emulator_created(account) == 2
    assert sha256(tmp_path / "b.mp4") == sha256(tmp_path / "a.mp4")
    assert [r["generation_id"] for r in second["shot_results"]] == \
        [r["generation_id"] for r in first["shot_results"]]
    assert json.loads(client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read())


def test_takes_on_two_machines_with_lost_answers_get_two_generations(tmp_path, prefect_api,
                                                                      s3_server, account):
    """`take: 1` on machine a and `take: 2` on machine b send identical payloads at the same
    time, and every create answer is lost after the account made the generation: each
    take adopts a generation of its own (claimed in the shared ledger), two in all."""
    httpx.post(f"{account}/_emulator/faults", json={"drop_after_create": 1.0}, timeout=10)
    prefix = f"shared-{secrets.token_hex(4)}"
    shot = {"id": "kite", "prompt": "A red kite over the dunes", "resolution": "540p"}
    runs = []
    for name, take in (("a", 1), ("b", 2)):
        path = write_shotlist(tmp_path, [dict(shot, take=take)], name=f"{name}.yaml")
        runs.append(_render(path, _machine_env(tmp_path, name, account, prefect_api, s3_server,
                                               prefix), tmp_path / f"{name}.mp4"))
    reports = [_report(run) for run in runs]
    assert emulator_created(account) == 2
    ids = [r["shot_results"][0]["generation_id"] for r in reports]
    assert len(set(ids)) == 2 and all(r["generated"] == 1 for r in reports)
