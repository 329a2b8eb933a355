"""`reelflow watch`: renders on start, re-renders a save (a title: nothing paid), says
nothing changed on an unchanged save, survives a broken save, keeps the session's budget,
toggles the draft profile (d + Enter), stops on Ctrl-C with exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import media_facts, write_shotlist

SHOTS = [
    {"id": "one", "prompt": "A lighthouse at night, beams sweeping", "resolution": "540p"},
    {"id": "two", "prompt": "Fishing boats leave the harbour at dawn", "resolution": "540p",
     "text": {"content": "Dawn"}},
]


def _wait_for(log: Path, needle: str, proc: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no {needle!r} in {timeout}s:\n{log.read_text()[-3000:]}")


def _save(path: Path, shots: list[dict]) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["shots"] = shots
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_watch_renders_each_save_and_keeps_watching(tmp_path, home, luma_env, prefect_api):
    path = write_shotlist(tmp_path, SHOTS)
    log = tmp_path / "watch.log"
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    before = luma_env.created_count()
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", "watch", str(path),
                                 "--budget", "1.1"], stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE, text=True, env=env)
    try:
        text = _wait_for(log, "render 1: ", proc)
        assert "2 paid" in text.splitlines()[-1] and luma_env.created_count() - before == 2
        first = media_facts(tmp_path / "out.mp4")["frames"]

        _save(path, [SHOTS[0], {**SHOTS[1], "text": {"content": "Sunrise"}}])   # a title
        line = _wait_for(log, "render 2: ", proc).split("render 2: ")[1].splitlines()[0]
        assert "0 paid ($0.00), 2 cached" in line
        assert "(shot two: text)" in log.read_text()
        assert luma_env.created_count() - before == 2
        assert media_facts(tmp_path / "out.mp4")["frames"] == first

        os.utime(path)                                                           # touch
        _wait_for(log, "nothing changed: no render", proc)

        path.write_text(path.read_text().replace("prompt: A lighthouse", "promt: A lighthouse"))
        text = _wait_for(log, "not rendered (1 problem)", proc)
        assert "list.yaml: shot 1 (one): promt: unknown field, did you mean 'prompt'?" in text

        third = {"id": "three", "prompt": "Gulls over the breakwater at noon", "resolution": "540p"}
        _save(path, [*SHOTS, third])                            # would pay past the budget left
        _wait_for(log, "more than the budget of", proc)
        assert luma_env.created_count() - before == 2

        _save(path, [SHOTS[0], {**SHOTS[1], "text": {"content": "Morning"}}])    # fixed
        line = _wait_for(log, "render 3: ", proc).split("render 3: ")[1].splitlines()[0]
        assert "0 paid" in line and "render 4" not in log.read_text()

        proc.stdin.write("d\n")                         # draft: ray-flash-2, $0.14 a shot, fits
        proc.stdin.flush()
        line = _wait_for(log, "render 4: ", proc).split("render 4: ")[1].splitlines()[0]
        assert "watch: profile draft" in log.read_text()
        assert "2 paid ($0.28)" in line and line.endswith("out.draft.mp4")
        assert luma_env.created_count() - before == 4
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert "watch: stopped after 4 renders, $1.08 paid" in log.read_text()
