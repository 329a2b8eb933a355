"""Lost renders: a left-behind heartbeat of a Running (stale) or Crashed run is resumed once."""

from __future__ import annotations

import secrets
import time

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Crashed, Running

from reelflow.flows.distribute import Heartbeat, heartbeat_key
from reelflow.flows.sweep import AutoSweep, SweepLease, flow_heartbeat_name, sweep
from reelflow.tasks.store import ClipStore


@flow(name="sweep-probe")
def _probe(x: int = 0) -> int:
    return x


def _store(s3_credentials, tmp_path) -> ClipStore:
    return ClipStore.from_url(f"s3://{s3_credentials.bucket}/sweep-{secrets.token_hex(4)}",
                              root=tmp_path / "clips")


def _beat(store, run_id):
    store._client().put_object(Bucket=store.bucket_name, Body=b"1",
                               Key=heartbeat_key(store, flow_heartbeat_name(run_id)))


def _has_beat(store, run_id) -> bool:
    from reelflow.tasks import _s3

    return _s3.exists(store._client(), store.bucket_name,
                      heartbeat_key(store, flow_heartbeat_name(run_id)))


def test_sweep_resumes_lost_and_crashed_runs_once(prefect_api, s3_credentials, tmp_path):
    store = _store(s3_credentials, tmp_path)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(_probe)
        deployment = client.create_deployment(flow_id=flow_id, name=f"d-{secrets.token_hex(3)}")
        lost = client.create_flow_run_from_deployment(deployment, parameters={"x": 7})
        crashed = client.create_flow_run_from_deployment(deployment, parameters={"x": 8})
        tired = client.create_flow_run_from_deployment(deployment, parameters={"x": 9},
                                                       tags=["reelflow-resume:3"])
        done = client.create_flow_run_from_deployment(deployment, parameters={"x": 10})
        alive = client.create_flow_run(_probe, parameters={"x": 1})
        unknown = client.create_flow_run(_probe, parameters={"x": 2})  # no heartbeat: not ours
        for run in (lost, tired, alive, unknown):
            client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(crashed.id, Crashed(message="process exited -9"), force=True)
        client.set_flow_run_state(done.id, Completed(), force=True)
        for run in (lost, crashed, tired, done):
            _beat(store, run.id)
        time.sleep(3.5)
        _beat(store, alive.id)

        swept = sweep(store, older_than_s=2.0, crashed_quiet_s=2.0)

        by_id = {s.flow_run_id: s for s in swept}
        assert set(by_id) == {str(lost.id), str(crashed.id), str(tired.id)}
        for run, x in ((lost, 7), (crashed, 8)):
            assert client.read_flow_run(run.id).state.type.value == "CRASHED"
            rerun = client.read_flow_run(by_id[str(run.id)].rerun_id)
            assert rerun.deployment_id == deployment and rerun.parameters == {"x": x}
            assert "reelflow-resume:1" in rerun.tags
        assert by_id[str(tired.id)].rerun_id is None  # resumed 3 times: left Crashed
        assert client.read_flow_run(tired.id).state.type.value == "CRASHED"
        assert client.read_flow_run(alive.id).state.type.value == "RUNNING"
        assert client.read_flow_run(unknown.id).state.type.value == "RUNNING"
        assert client.read_flow_run(done.id).state.type.value == "COMPLETED"
        assert not any(_has_beat(store, r.id) for r in (lost, crashed, tired, done))
        assert _has_beat(store, alive.id)
        assert sweep(store, older_than_s=2.0, crashed_quiet_s=2.0) == []  # once each


def test_a_heartbeat_is_removed_when_its_holder_ends(s3_credentials, tmp_path):
    store = _store(s3_credentials, tmp_path)
    with Heartbeat(store, flow_heartbeat_name("abc"), every_s=0.2):
        time.sleep(0.3)
        assert _has_beat(store, "abc")
    assert not _has_beat(store, "abc")


def test_one_sweeper_at_a_time_and_a_lost_one_replaced(s3_credentials, tmp_path):
    store = _store(s3_credentials, tmp_path)
    first, second = SweepLease(store, lease_s=1.5), SweepLease(store, lease_s=1.5)
    assert first.take() and not second.take()
    assert first.take() and not second.take()  # renewed by its holder
    time.sleep(1.7)                             # the holder stopped renewing: expired
    assert second.take() and not first.take()


def test_auto_sweep_needs_the_lease(prefect_api, s3_credentials, tmp_path):
    store = _store(s3_credentials, tmp_path)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(_probe)
        deployment = client.create_deployment(flow_id=flow_id, name=f"d-{secrets.token_hex(3)}")
        lost = client.create_flow_run_from_deployment(deployment, parameters={"x": 3})
        client.set_flow_run_state(lost.id, Running(), force=True)
    _beat(store, lost.id)
    time.sleep(3.5)  # ages are whole seconds (Last-Modified, Date): clearly past 2
    lines = []
    holder, other = (AutoSweep(store, every_s=30, older_than_s=2.0, report=lines.append)
                     for _ in range(2))
    assert holder.lease.take()
    assert other.once() == [] and lines == []   # another worker holds the lease
    found = holder.once()
    assert [s.flow_run_id for s in found] == [str(lost.id)] and found[0].rerun_id
    assert lines == [f"reelflow sweep: {found[0].name} ({lost.id}) lost, no heartbeat for "
                     f"{found[0].age_s:.0f}s: run again as {found[0].rerun_id}"]
