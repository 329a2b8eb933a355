"""The `reelflow` command: bad input refused before Prefect, render/plan/schema, both endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reelflow.cli import main
from tests.helpers import (REPO, TEST_KEY, emulator_created, media_facts, run_cli,
                           start_standalone_emulator, write_shotlist)

BAD_DIR = REPO / "tests" / "bad_shotlists"
EXPECTED = yaml.safe_load((BAD_DIR / "expected.yaml").read_text(encoding="utf-8"))
SMALL = [
    {"id": "one", "prompt": "A lighthouse at night, beams sweeping", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "two", "prompt": "Fishing boats leave the harbour at dawn", "resolution": "540p"},
]


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_bad_shotlist_exits_2_with_one_line_per_problem(name, luma_env, home, tmp_path, capsys):
    path = BAD_DIR / name
    out = tmp_path / "out.mp4"
    before = luma_env.created_count()

    code = main(["render", str(path), "--out", str(out)])

    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2
    assert lines and all(line.startswith(f"{path.name}: ") for line in lines), err
    assert "Traceback" not in err
    for fragment in EXPECTED[name]:
        assert fragment in err, (fragment, err)
    assert luma_env.created_count() == before
    assert not out.exists()


def test_bad_list_is_refused_before_prefect_loads(tmp_path):
    bad = write_shotlist(tmp_path, [{"id": "x", "promt": "typo"}])
    # CPU seconds, not wall: the work done, whatever else the machine is doing
    code = ("import sys, time; t = time.process_time(); from reelflow.cli import main; "
            f"rc = main(['render', {str(bad)!r}]); "
            "print(rc, 'prefect' in sys.modules, 'lumaai' in sys.modules, round(time.process_time() - t, 2))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    rc, prefect_loaded, sdk_loaded, seconds = result.stdout.split()
    assert (rc, prefect_loaded, sdk_loaded) == ("2", "False", "False")
    assert float(seconds) < 2  # `import prefect` alone is over a CPU second
    assert "did you mean 'prompt'" in result.stderr


def test_planning_loads_neither_prefect_nor_an_sdk():
    """`plan` prints its table and warnings before Prefect (and its log format) loads."""
    code = ("import sys, reelflow.flows.plan, reelflow.flows.stills, reelflow.flows.endpoint; "
            "print(sorted(m for m in ('prefect', 'lumaai', 'luma_agents', 'boto3') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_schema_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    text = json.dumps(schema)
    for field in ("prompt", "trim", "transition", "camera", "upscale", "music", "loudness"):
        assert f'"{field}"' in text


def test_plan_shows_cost_then_cached(tmp_path, home, luma_env, prefect_api, capsys):
    path = write_shotlist(tmp_path, SMALL)
    assert main(["plan", str(path), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in before["shots"]] == ["to generate", "to generate"]
    assert before["cost_usd"] == pytest.approx(2 * 0.40, abs=0.02)  # ray-2 540p 5 s ~ $0.40

    assert main(["render", str(path), "--json"]) == 0
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in after["shots"]] == ["cached", "cached"]
    assert after["cost_usd"] == 0
    assert main(["plan", str(path)]) == 0                 # the table: list price, then $0.00 to pay
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-3:] == ["price", "to", "pay"]
    for line, shot in zip(lines[1:3], before["shots"]):
        assert line.split()[-3:] == ["cached", f"${shot['cost_usd']:.2f}", "$0.00"]
    assert lines[-1].startswith("total to spend: $0.00 (final)")


def test_render_cli_against_a_standalone_emulator_with_a_key(tmp_path, prefect_api):
    proc, url = start_standalone_emulator(tmp_path / "account")
    try:
        path = write_shotlist(tmp_path, SMALL)
        env = {"LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url, "PREFECT_API_URL": prefect_api,
               "REELFLOW_HOME": str(tmp_path / "home")}
        first = run_cli(["render", str(path), "--json"], env=env)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert (report["generated"], report["cached"], report["shots"]) == (2, 0, 2)
        assert report["cost_usd"] == 0.80  # 2 ray-2 shots, 540p 5 s, at $0.40
        assert "emulator" not in first.stderr.lower()  # a key was given: no embedded emulator
        assert emulator_created(url) == 2
        facts = media_facts(Path(report["output"]))
        assert facts["frames"] == 10 * 24 - 12
        assert abs(report["duration_s"] - 9.5) <= 1 / 24

        again = run_cli(["render", str(path), "--json"], env=env)
        assert json.loads(again.stdout)["generated"] == 0
        assert emulator_created(url) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_render_cli_without_key_uses_embedded_emulator(tmp_path, prefect_api):
    path = write_shotlist(tmp_path, SMALL[:1])
    env = {"PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(tmp_path / "home"),
           "REELFLOW_EMULATOR_LATENCY": "0"}
    env_clean = {k: v for k, v in os.environ.items() if not k.startswith("LUMAAI_")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "reelflow.cli", "render", str(path)],
                            capture_output=True, text=True, env={**env_clean, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "emulator" in line.lower()]
    assert len(notices) == 1 and "LUMAAI_API_KEY" in notices[0]
    output = Path(result.stdout.strip().splitlines()[-1])
    assert output == tmp_path / "out.mp4" and output.exists()
    assert media_facts(output)["frames"] == 5 * 24
    assert time.monotonic() - started < 120
