"""`reelflow sweep`: a Running render whose heartbeat went stale is marked Crashed and run again."""

from __future__ import annotations

import secrets
import time

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running

from reelflow.flows.distribute import heartbeat_key
from reelflow.flows.sweep import flow_heartbeat_name, sweep
from reelflow.tasks.store import ClipStore


@flow(name="sweep-probe")
def _probe(x: int = 0) -> int:
    return x


def test_sweep_crashes_and_reruns_only_stale_runs(prefect_api, s3_credentials, tmp_path):
    store = ClipStore.from_url(f"s3://{s3_credentials.bucket}/sweep-{secrets.token_hex(4)}",
                               root=tmp_path / "clips")

    def beat(run_id):
        store._client().put_object(Bucket=store.bucket_name, Body=b"1",
                                   Key=heartbeat_key(store, flow_heartbeat_name(run_id)))

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(_probe)
        deployment = client.create_deployment(flow_id=flow_id, name=f"d-{secrets.token_hex(3)}")
        lost = client.create_flow_run_from_deployment(deployment, parameters={"x": 7})
        alive = client.create_flow_run(_probe, parameters={"x": 1})
        unknown = client.create_flow_run(_probe, parameters={"x": 2})  # no heartbeat: not ours
        for run in (lost, alive, unknown):
            client.set_flow_run_state(run.id, Running(), force=True)
        beat(lost.id)
        time.sleep(3.5)
        beat(alive.id)

        swept = sweep(store, older_than_s=2.0)

        assert [s.flow_run_id for s in swept] == [str(lost.id)] and swept[0].age_s >= 2
        assert client.read_flow_run(lost.id).state.type.value == "CRASHED"
        assert client.read_flow_run(alive.id).state.type.value == "RUNNING"
        assert client.read_flow_run(unknown.id).state.type.value == "RUNNING"
        rerun = client.read_flow_run(swept[0].rerun_id)
        assert rerun.deployment_id == deployment and rerun.parameters == {"x": 7}
        assert sweep(store, older_than_s=2.0) == []  # once marked, not swept again
