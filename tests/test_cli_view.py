"""What `reelflow render` shows: a live view on a terminal (run under a pseudo-terminal),
plain grep-friendly lines when piped, no Prefect chatter unless --verbose, nothing with
--quiet, and no "Generating"/"Conforming" lines for shots that are neither."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.helpers import REPO, run_cli, write_shotlist

SHOTS = [
    {"id": "alpha", "prompt": "A red kite over green hills", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "beta", "prompt": "A blue boat on a calm lake", "resolution": "540p", "trim": [1, 4]},
    {"id": "gamma", "title": "The end", "duration": 2},
]
PREFECT_INFO = re.compile(r"\|\s*INFO\s*\|")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture()
def cli_env(prefect_api, luma_env, home):
    """The CLI's environment: the session emulator and Prefect server, Prefect's INFO log on
    (a user's default: the tests' session runs it at WARNING)."""
    return {"PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "INFO",
            "REELFLOW_HOME": str(home)}


def _run_in_pty(args: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    """`reelflow ARGS` with stdin/stdout/stderr on a 200x40 pseudo-terminal (wide enough that no
    temporary path wraps, whatever the runner adds to it); its exit code and
    everything it wrote there (escape sequences stripped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", *args], stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, **env, "TERM": "xterm-256color",
                                 "COLUMNS": "200", "LINES": "40"},
                            cwd=REPO, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:        # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def _flow_run_log(stderr: str) -> str:
    """The messages Prefect stored for the flow run whose URL the CLI printed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    run_id = re.search(r"Flow run: \S+/flow-run/([0-9a-f-]{36})", stderr).group(1)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(log.message for log in logs)


def test_terminal_render_shows_the_live_view_then_a_summary(tmp_path, cli_env):
    path = write_shotlist(tmp_path, SHOTS)
    code, screen = _run_in_pty(["render", str(path)], cli_env)

    assert code == 0, screen[-3000:]
    # the live table: its heading, the spend line, every shot with a state
    assert re.search(r"list\.yaml · final · (generating|assembling|delivering) · \d+s · "
                     r"spent \$\d+\.\d\d of est\. \$0\.80", screen), screen[-3000:]
    for shot in ("alpha", "beta", "gamma"):
        assert re.search(rf"\d+\s+{shot}\s+(queued|dreaming|downloading|conforming|done)\s+"
                         rf"\d+\.\ds", screen), shot
    assert "waiting on: alpha" in screen                     # the shot that holds it up
    # the summary: one row per shot, totals, files; no Prefect log lines
    assert re.search(r"alpha\s+│\s+paid\s+│\s+ray-2", screen)
    assert re.search(r"gamma\s+│\s+card", screen)
    assert "3 shots: 2 paid ($0.80)" in screen and "1 card;" in screen
    assert f"output:        {tmp_path / 'out.mp4'}" in screen
    assert not PREFECT_INFO.search(screen)


def test_piped_render_prints_plain_lines_and_no_prefect_chatter(tmp_path, cli_env):
    path = write_shotlist(tmp_path, SHOTS)
    first = run_cli(["render", str(path)], env=cli_env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(tmp_path / "out.mp4")
    assert not PREFECT_INFO.search(first.stderr), first.stderr
    lines = first.stderr.splitlines()
    for expected in (r"shot alpha: queued \(paid \$0\.\d\d\)",
                     "shot alpha: downloading", "shot beta: conforming", "shot beta: done",
                     "shot gamma: done", "assembling", r"done: 3 shots: 2 paid \(\$0\.\d\d\), "
                     r"0 cached, 1 card; 9\.5s of video"):
        assert any(re.fullmatch(rf"\s*\d+\.\ds  {expected}.*", line) for line in lines), expected

    assert "Rendering list.yaml (3 shots" in _flow_run_log(first.stderr)   # the UI keeps it all

    again = run_cli(["render", str(path), "--verbose"], env=cli_env)   # all cached now
    assert again.returncode == 0, again.stderr
    assert PREFECT_INFO.search(again.stderr)                 # --verbose: Prefect's log is back
    assert re.search(r"shot alpha: cached", again.stderr)
    for misleading in ("Generating shot", "Conforming", "Rendered title card", "conforming",
                       "queued", "dreaming"):
        assert misleading not in again.stderr, misleading
    assert "done: 3 shots: 0 paid ($0.00), 2 cached, 1 card" in again.stderr

    quiet = run_cli(["render", str(path), "--quiet"], env=cli_env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.strip() == str(tmp_path / "out.mp4")


def test_piped_render_names_the_failed_shot(tmp_path, prefect_api, home):
    from reelflow.emulator import Emulator
    from reelflow.emulator.faults import Faults
    from tests.helpers import TEST_KEY

    emu = Emulator(tmp_path / "account", latency=0.0, faults=Faults(moderation_pattern="hawk"))
    emu.start()
    try:
        path = write_shotlist(tmp_path, [SHOTS[0], {"id": "hawk", "resolution": "540p",
                                                    "prompt": "A hawk dives over a field"}])
        result = run_cli(["render", str(path)], env={
            "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "INFO",
            "REELFLOW_HOME": str(home), "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": emu.base_url})
    finally:
        emu.stop()
    assert result.returncode == 1 and result.stdout == ""
    assert re.search(r"^\s*\d+\.\ds  shot hawk: failed: .*moderation", result.stderr, re.M), result.stderr
    assert re.search(r"^\s*\d+\.\ds  shot alpha: (downloading|conforming|done)", result.stderr, re.M)
    assert result.stderr.rstrip().splitlines()[-1].startswith("reelflow: ")
    assert not PREFECT_INFO.search(result.stderr)
