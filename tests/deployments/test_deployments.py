"""reelflow's deployments: served from one process (scheduled runs), or registered for a pool."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import write_shotlist

SHOTS = [{"id": "kite", "prompt": "A red kite over green hills", "resolution": "540p"}]
OUTPUT = {"path": "renders/kite.mp4", "resolution": "540p", "fps": 24}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`reelflow serve ARGS` (main_serve) in a child process, its stderr to a file."""
    code = "import sys; from reelflow.deployments.serve import main_serve; sys.exit(main_serve(sys.argv[1:]))"
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop_serve(proc: subprocess.Popen) -> int:
    """SIGTERM, as a service manager would: the runner shuts down and the server stops."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _wait_for_line(log: Path, prefix: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no {prefix!r} line in {timeout}s:\n{log.read_text()[-3000:]}")


def _completed_run(api_url: str, deployment: str, proc: subprocess.Popen, log: Path,
                   timeout: float = 150):
    """Poll the API until a run of FLOW/DEPLOYMENT is Completed; fail early on a failed run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[deployment])))
                for run in runs:
                    assert run.state_type.value not in ("FAILED", "CRASHED"), log.read_text()[-3000:]
                    if run.state_type.value == "COMPLETED":
                        return run
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
    raise AssertionError(f"no completed {deployment} run in {timeout}s:\n{log.read_text()[-3000:]}")


def _wait_for_deployment(client, name: str, proc: subprocess.Popen, log: Path, timeout: float = 60):
    """The served deployment, once the runner has registered it."""
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
    raise AssertionError(f"{name} not registered in {timeout}s:\n{log.read_text()[-3000:]}")


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_RUNNER_POLL_FREQUENCY="2",
               PREFECT_LOGGING_LEVEL="INFO", **extra)
    return env


def test_serve_starts_a_server_and_runs_the_schedule(tmp_path, home, luma_env):
    """No PREFECT_API_URL: `reelflow serve` starts a server; a scheduled produce run completes."""
    folder = tmp_path / "lists"
    folder.mkdir()
    write_shotlist(folder, SHOTS, name="kite.yaml", output=OUTPUT)
    port, log = _free_port(), tmp_path / "serve.log"
    start = luma_env.created_count()
    proc = _start_serve(["--folder", str(folder), "--interval", "5", "--port", str(port)],
                        _child_env(tmp_path), log)
    try:
        ui = _wait_for_line(log, "Prefect UI: ", proc, timeout=150).split(": ", 1)[1]
        assert ui == f"http://127.0.0.1:{port}"
        run = _completed_run(f"{ui}/api", "produce", proc, log)
        assert run.auto_scheduled  # created by the schedule, not by hand
        assert run.parameters["folder"] == str(folder)
        assert (folder / "renders" / "kite.mp4").stat().st_size > 1000
        assert luma_env.created_count() - start == 1
    finally:
        returncode = _stop_serve(proc)
    assert returncode == 0, log.read_text()[-3000:]
    assert "starting a local Prefect server" in log.read_text()
    with pytest.raises(httpx.HTTPError):  # the server it started is gone with it
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)


def test_serve_uses_the_configured_api_and_runs_on_demand(tmp_path, home, luma_env, prefect_api):
    """PREFECT_API_URL set: no server started; a run of the render deployment completes."""
    from prefect.client.orchestration import get_client

    path = write_shotlist(tmp_path, SHOTS, name="kite.yaml", output=OUTPUT)
    log = tmp_path / "serve.log"
    proc = _start_serve([], _child_env(tmp_path, PREFECT_API_URL=prefect_api), log)
    try:
        _wait_for_line(log, "Serving render-sequence/render", proc, timeout=90)
        with get_client(sync_client=True) as client:
            deployment = _wait_for_deployment(client, "render-sequence/render", proc, log)
            assert deployment.entrypoint == "reelflow.flows.render.render_sequence"
            client.create_flow_run_from_deployment(
                deployment.id, parameters={"shotlist_path": str(path), "profile": "draft"})
        run = _completed_run(prefect_api, "render", proc, log, timeout=90)
        assert run.parameters["profile"] == "draft"
        assert (tmp_path / "renders").is_dir() and any((tmp_path / "renders").glob("kite*.mp4"))
        # serve hosts the file server the run's output artifact links to: it opens over http
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        files = _wait_for_line(log, "Files linked from the UI: ", proc, timeout=10).split(": ", 1)[1]
        with get_client(sync_client=True) as client:
            output = next(a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))) if a.key == "output-kite")
        link = output.data.split("(", 1)[1].rstrip(")")
        assert link.startswith(files + "/f/")
        video = next((tmp_path / "renders").glob("kite*.mp4"))
        assert httpx.get(link, timeout=10).content == video.read_bytes()
    finally:
        returncode = _stop_serve(proc)
    assert returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "starting a local Prefect server" not in text
    assert f"Prefect UI: {prefect_api.removesuffix('/api')}" in text


def test_deploy_to_pool_registers_both_deployments(tmp_path, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    from reelflow.deployments.serve import deploy_to_pool

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="reelflow-process", type="process"))
    ids = deploy_to_pool("reelflow-process", folder=str(tmp_path), cron="30 6 * * *", profile="draft")

    with get_client(sync_client=True) as client:
        found = client.read_deployments(work_pool_filter=WorkPoolFilter(
            name=WorkPoolFilterName(any_=["reelflow-process"])))
    by_name = {d.name: d for d in found}
    assert sorted(by_name) == ["produce", "render"]
    assert sorted(map(str, ids)) == sorted(str(d.id) for d in found)
    produce, render = by_name["produce"], by_name["render"]
    assert produce.entrypoint == "reelflow.flows.production.produce"
    assert render.entrypoint == "reelflow.flows.render.render_sequence"
    assert produce.parameters == {"folder": str(tmp_path), "profile": "draft", "budget_usd": None}
    assert [s.schedule.cron for s in produce.schedules] == ["30 6 * * *"]
    assert render.schedules == []


def test_deploy_to_missing_pool(tmp_path, prefect_api):
    from prefect.client.orchestration import get_client

    from reelflow.deployments.serve import deploy_to_pool
    from reelflow.errors import ReelflowError

    with pytest.raises(ReelflowError, match="prefect work-pool create nopool --type process"):
        deploy_to_pool("nopool", create_pool=False)
    deploy_to_pool("newpool")  # created as a process pool, then used
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("newpool").type == "process"


def test_packaged_prefect_yaml_names_installed_entrypoints():
    import yaml

    from reelflow.deployments import PREFECT_YAML
    from reelflow.flows.production import produce
    from reelflow.flows.render import render_sequence

    doc = yaml.safe_load(PREFECT_YAML.read_text())
    entries = {d["name"]: d for d in doc["deployments"]}
    assert entries["render"]["entrypoint"] == "reelflow.flows.render.render_sequence"
    assert entries["produce"]["entrypoint"] == "reelflow.flows.production.produce"
    assert entries["produce"]["schedules"][0]["cron"] == "0 * * * *"
    from prefect.flows import load_flow_from_entrypoint

    assert load_flow_from_entrypoint(entries["render"]["entrypoint"]).name == render_sequence.name
    assert load_flow_from_entrypoint(entries["produce"]["entrypoint"]).name == produce.name
