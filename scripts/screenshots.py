"""Screenshots of real reelflow renders in the Prefect UI, taken with headless Chromium.

Starts ``prefect server`` on a free loopback port with a throwaway PREFECT_HOME, a
standalone Luma emulator that refuses one prompt on moderation and fails a quarter of
the generations once ("Job failed"), and ``reelflow files`` (so the summaries' links
open over http). Then, through ``python -m reelflow.cli render`` (fresh REELFLOW_HOME):

1. the demo shot list plus a moderated shot with ``--on-moderation fail``: the render
   fails on that shot after the others were paid (some after a resubmit);
2. the same list with ``--on-moderation placeholder``: it completes, the paid shots
   reused, a slate in the refused shot's place.

It finds each flow run and its ``render-*`` markdown artifact through the REST API and
screenshots four UI pages:

* ``flow-run.png`` and ``summary-artifact.png``: the failed render's run page (state,
  task runs, the refused shot) and its summary (what failed and why, every attempt);
* ``flow-run-completed.png`` and ``summary-completed.png``: the same for the second render.

Usage::

    python scripts/screenshots.py --out docs/

Needs Chromium (Debian: ``apt-get install -y chromium``) or ``--chromium PATH``.
Exit status 0 when both PNGs were written from pages whose DOM showed the run / the table
(not the UI's loading screen or its "Can't connect to Server API" toast).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

log = logging.getLogger("reelflow.scripts.screenshots")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LIST = REPO / "examples" / "demo.yaml"
WINDOW = (1600, 1100)
#: The prompt the emulator refuses, and the faults it injects (seeded).
MODERATED = "knife"
FAULTS = ["--moderation-pattern", MODERATED, "--fail-rate", "0.3", "--seed", "3", "--latency", "1"]
#: The shot added to the demo list: refused by the emulator's moderation.
MODERATED_SHOT = {"id": "knife", "prompt": "A fisherman's knife glints on the quay at dawn"}
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser",
                       "google-chrome", "google-chrome-stable")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium binary; the Debian wrapper script is skipped for the real binary."""
    for name in ((explicit,) if explicit else CHROMIUM_CANDIDATES):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium, or pass --chromium PATH")


def _api(base: str, path: str, body: dict | None = None) -> object:
    """GET (body None) or POST JSON to the Prefect REST API and decode the answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


class PrefectServer:
    """``prefect server start`` in a child process with its own PREFECT_HOME."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.port = port
        self.ui = f"http://127.0.0.1:{port}"
        self.api = f"{self.ui}/api"
        self.home = workdir / "prefect-home"
        self.log_path = workdir / "prefect-server.log"
        self.process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """Environment shared by the server and its clients: isolated, no telemetry."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LUMAAI_"))}
        # The UI asks PREFECT_UI_API_URL for its API, by default 127.0.0.1:4200, not our port.
        env.update(PREFECT_HOME=str(self.home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_UI_API_URL=self.api, PREFECT_UI_URL=self.ui)
        return env

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait for /api/health (about 20 s on a fresh home)."""
        prefect = Path(sys.executable).with_name("prefect")
        argv = [str(prefect) if prefect.exists() else "prefect", "server", "start",
                "--host", "127.0.0.1", "--port", str(self.port)]
        self.home.mkdir(parents=True, exist_ok=True)
        # The server log goes to a file: a pipe nobody reads would fill and block the server.
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(argv, env=self.env(), stdout=sink, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited {self.process.returncode}: "
                                   + self.log_path.read_text(errors="replace")[-2000:])
            try:
                if _api(self.api, "/health") is True:
                    log.info("prefect server ready at %s", self.ui)
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"prefect server not healthy after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server (SIGTERM to its own process group, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)


def start_child(argv: list[str], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """A reelflow child process that prints its URL on its first line; (process, URL)."""
    stderr = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    line = proc.stdout.readline()
    urls = [word.rstrip(".,") for word in line.split() if word.startswith("http://")]
    if not urls:
        proc.kill()
        raise RuntimeError(f"reelflow {argv[0]} printed no URL: {line!r}")
    return proc, urls[0]


def render_env(server: PrefectServer, workdir: Path, emulator_url: str) -> dict[str, str]:
    env = server.env()
    env.update(PREFECT_API_URL=server.api, REELFLOW_HOME=str(workdir / "reelflow-home"),
               LUMAAI_API_KEY="screenshots", LUMAAI_BASE_URL=emulator_url)
    return env


def render(env: dict[str, str], shotlist: Path, workdir: Path, policy: str) -> subprocess.CompletedProcess:
    """Run ``reelflow render --json --on-moderation POLICY`` against the server."""
    argv = [sys.executable, "-m", "reelflow.cli", "render", str(shotlist), "--json",
            "--on-moderation", policy, "--out", str(workdir / "out" / "demo.mp4")]
    return subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=900)


def moderated_list(source: Path, workdir: Path) -> Path:
    """``source`` with the moderated shot added after its second shot."""
    import yaml

    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["shots"].insert(2, dict(MODERATED_SHOT))
    path = workdir / source.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def find_run_and_artifact(api: str) -> tuple[str, str]:
    """The newest render-sequence flow run and its ``render-*`` markdown artifact."""
    runs = _api(api, "/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 10})
    runs = [r for r in runs if r.get("parent_task_run_id") is None and r.get("start_time")]
    if not runs:
        raise RuntimeError("no flow run on the server")
    run_id = runs[0]["id"]
    artifacts = _api(api, "/artifacts/filter", {
        "artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["markdown"]}},
        "sort": "CREATED_DESC", "limit": 20})
    summaries = [a for a in artifacts if (a.get("key") or "").startswith("render-")]
    if not summaries:
        raise RuntimeError(f"flow run {run_id} has no render-* markdown artifact")
    return run_id, summaries[0]["id"]


def _chromium_argv(chromium: str, profile: str, budget_ms: int) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--virtual-time-budget={budget_ms}"]


def dump_dom(chromium: str, url: str, budget_ms: int = 15000) -> str:
    """The page's DOM after ``budget_ms`` of virtual time (a fresh profile each time)."""
    with tempfile.TemporaryDirectory(prefix="reelflow-chromium-") as profile:
        done = subprocess.run([*_chromium_argv(chromium, profile, budget_ms), "--dump-dom", url],
                              capture_output=True, text=True, timeout=120 + budget_ms / 1000)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}) on {url}:\n{done.stderr[-2000:]}")
    return done.stdout


def screenshot(chromium: str, url: str, out: Path, budget_ms: int = 15000) -> None:
    """One headless-Chromium screenshot of ``url`` (a fresh profile each time)."""
    with tempfile.TemporaryDirectory(prefix="reelflow-chromium-") as profile:
        done = subprocess.run([*_chromium_argv(chromium, profile, budget_ms), f"--screenshot={out}", url],
                              capture_output=True, text=True, timeout=120 + budget_ms / 1000)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}) on {url}:\n{done.stderr[-2000:]}")


#: Text the UI shows when it cannot reach its API or a page crashed.
UI_ERRORS = ("Can't connect to Server API", "Oops. Something went wrong")


def take(chromium: str, url: str, out: Path, expect: tuple[str, ...]) -> None:
    """Screenshot ``url`` once its DOM shows ``expect`` and no UI error; more time on a retry.

    The DOM is checked in a separate load because a PNG cannot say *why* a page is wrong:
    the UI's error toasts draw on a page as busy as a loaded one.
    """
    for budget in (15000, 40000):
        dom = dump_dom(chromium, url, budget)
        missing = [text for text in expect if text not in dom]
        errors = [text for text in UI_ERRORS if text in dom]
        if not missing and not errors:
            screenshot(chromium, url, out, budget)
            log.info("wrote %s (%d bytes) from %s", out, out.stat().st_size, url)
            return
        log.info("%s not ready after %d ms: missing %s, errors %s", url, budget, missing, errors)
    raise RuntimeError(f"{url} never showed {missing} (UI errors: {errors})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="directory for the PNGs")
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST, help="shot list to render")
    parser.add_argument("--chromium", default=None, help="Chromium binary")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log, render)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    chromium = find_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="reelflow-screens-"))
    shotlist = moderated_list(args.list, workdir)
    server = PrefectServer(workdir, free_port())
    children = []
    try:
        server.start()
        base_env = render_env(server, workdir, "")
        emulator, emulator_url = start_child(["emulator", "--port", "0", "--data",
                                              str(workdir / "account"), *FAULTS],
                                             base_env, workdir / "emulator.log")
        files, _ = start_child(["files", "--port", "0"], base_env, workdir / "files.log")
        children += [emulator, files]
        env = render_env(server, workdir, emulator_url)
        failed = render(env, shotlist, workdir, "fail")
        if failed.returncode != 1 or f"shot {MODERATED}" not in failed.stderr:
            raise RuntimeError(f"the first render should fail on shot {MODERATED} "
                               f"({failed.returncode}):\n{failed.stderr[-3000:]}")
        log.info("first render failed as meant: %s", failed.stderr.strip().splitlines()[-1])
        run_id, artifact_id = find_run_and_artifact(server.api)
        take(chromium, f"{server.ui}/runs/flow-run/{run_id}", args.out / "flow-run.png",
             expect=("Failed", "Task runs"))
        take(chromium, f"{server.ui}/artifacts/artifact/{artifact_id}", args.out / "summary-artifact.png",
             expect=("<table", "data:image/jpeg;base64,", "Failed:"))
        done = render(env, shotlist, workdir, "placeholder")
        if done.returncode != 0:
            raise RuntimeError(f"render failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        log.info("rendered %s (%s shots)", report["output"], report["shots"])
        run_id, artifact_id = find_run_and_artifact(server.api)
        take(chromium, f"{server.ui}/runs/flow-run/{run_id}", args.out / "flow-run-completed.png",
             expect=("Completed", "Task runs"))
        take(chromium, f"{server.ui}/artifacts/artifact/{artifact_id}",
             args.out / "summary-completed.png", expect=("<table", "data:image/jpeg;base64,", "Completed"))
    finally:
        for child in children:
            os.killpg(child.pid, 2)
            child.wait(timeout=20)
        server.stop()
        if args.keep:
            log.info("kept %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for name in ("flow-run.png", "summary-artifact.png", "flow-run-completed.png", "summary-completed.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
