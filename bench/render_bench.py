"""Render a 20-shot list three ways on a zero-latency emulator and print wall times and ratios.

    python bench/render_bench.py [--shots 20] [--server]

1. first render (everything generated, conformed, assembled)
2. unchanged rerun (nothing generated or encoded)
3. one shot's prompt changed (one generation, its conform and seams)

Each run is a separate `reelflow render --json` process, as a user runs it; the
Prefect start-up share is the part of the process's wall time spent outside the
flow body (imports, ephemeral server or API connection, run bookkeeping).
Not part of CI: these machines are noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROMPTS = ["harbour", "lighthouse", "gulls", "nets", "market", "tram", "bakery", "river",
           "bridge", "rooftops", "sunset", "rain", "cafe", "stairs", "garden", "pier", "ferry",
           "alley", "chapel", "beach"]


def shotlist(path: Path, shots: int, changed: bool) -> None:
    items = []
    for i in range(shots):
        subject = PROMPTS[i % len(PROMPTS)]
        prompt = f"Shot {i}: the {subject} of an old port town, cinematic light"
        if changed and i == shots // 2:
            prompt += ", now at night"
        items.append({"id": f"s{i:02d}", "prompt": prompt,
                      "transition": {"type": "crossfade", "duration": 0.5}})
    doc = {"version": 1, "title": "bench", "defaults": {"resolution": "720p"},
           "output": {"path": "bench.mp4", "resolution": "1080p", "fps": 24}, "shots": items}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run(path: Path, env: dict) -> tuple[float, dict]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "reelflow.cli", "render", str(path), "--json"],
                            capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"render failed:\n{result.stderr}")
    return wall, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reelflow-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMAAI_")}
    env.update(REELFLOW_HOME=str(work / "home"), REELFLOW_EMULATOR_LATENCY="0")
    path = work / "bench.yaml"
    rows = []
    for label, changed in (("first render", False), ("unchanged rerun", False),
                           ("one shot changed", True)):
        shotlist(path, args.shots, changed)
        wall, report = run(path, env)
        flow_s = report["flow_s"]
        rows.append((label, wall, flow_s, report))
    first = rows[0][1]
    print(f"{args.shots} shots, 720p generations -> 1080p, 0.5 s crossfades; "
          f"Prefect: {env.get('PREFECT_API_URL') or 'ephemeral'}")
    print(f"{'run':<18} {'wall s':>8} {'x first':>8} {'flow s':>8} {'prefect share':>14} "
          f"{'paid':>5} {'encoded':>8}")
    for label, wall, flow_s, report in rows:
        share = (wall - flow_s) / wall
        print(f"{label:<18} {wall:>8.1f} {wall / first:>8.3f} {flow_s:>8.1f} {share:>13.0%} "
              f"{report['generated']:>5} {report['encoded_pieces']:>8}")


if __name__ == "__main__":
    main()
