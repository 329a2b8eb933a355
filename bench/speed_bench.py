"""Issue 14's targets as ratios measured in one run: warm Prefect, `watch`, edits, memory.

    python bench/speed_bench.py [--shots 20] [--resolution 720p] [--runs 3]
                                [--rss-shots 20,100] [--rss-size 1920x1080] [--work DIR]
                                [--skip-cli]

Everything runs in the default set-up (no PREFECT_API_URL: reelflow's managed server,
the embedded emulator at zero latency) in fresh homes under --work:

1. bare Prefect ``@flow`` calling one ``@task``, whole process, against the running server
2. ``reelflow render`` of an N-shot list (shot 10 a title card, 0.5 s crossfades) whose
   clips are all cached, unchanged, whole process (median of --runs)
3. ``reelflow watch``: save → new MP4 for a title change, a trim change, a changed clip
   whose download is done (its prompt was rendered before at another size), and a save
   that changes nothing (touch); timed from the save to the watch's line, poll included
4. the single-pass filtergraph render of the same sequence (the same clips and card,
   ``_single_pass_reference``) as the yardstick of the watch rows
5. bench/edit_bench.py's full first edit (cold cache) and single-pass at --rss-size, and
   the process-tree peak RSS of the full edit for each of --rss-shots

Prints one table. Not part of CI; single runs on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import edit_bench  # noqa: E402  (the media rows and the machine line)

BARE_FLOW = ("from prefect import flow, task\n"
             "@task\ndef one():\n    return 1\n"
             "@flow\ndef bare():\n    return one()\n"
             "bare()\n")
PROMPTS = ["harbour at dawn", "gulls over the pier", "a lighthouse beam", "nets drying",
           "a fishing boat", "rain on the quay", "a ferry leaves", "waves on rocks",
           "a child with a kite", "fog rolls in"]


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "REELFLOW_PREFECT") and not k.startswith("LUMA")}
    env.update(REELFLOW_HOME=str(work / "home"), PREFECT_HOME=str(work / "prefect"),
               REELFLOW_EMULATOR_LATENCY="0", REELFLOW_SERVER_IDLE="900")
    return env


def _shots(n: int, resolution: str) -> list[dict]:
    shots = []
    for i in range(n):
        if i == min(9, n // 2):
            shots.append({"id": f"s{i:02d}", "title": "Chapter one", "duration": 5})
        else:
            shots.append({"id": f"s{i:02d}", "resolution": resolution,
                          "prompt": f"Shot {i}: {PROMPTS[i % len(PROMPTS)]}, slow dolly"})
    return shots


def _write(path: Path, shots: list[dict], resolution: str) -> Path:
    doc = {"version": 1, "title": "Speed bench",
           "defaults": {"transition": {"type": "crossfade", "duration": 0.5}},
           "output": {"path": f"{path.stem}.mp4", "resolution": resolution, "fps": 24},
           "shots": shots}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{proc.stderr[-3000:]}")
    return took


def _timed_tree(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of the command's whole process tree (0.1 s samples)."""
    started, peak = time.monotonic(), 0
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while proc.poll() is None:
        peak = max(peak, edit_bench.TreeSampler._tree_kb(proc.pid))
        time.sleep(0.1)
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{proc.stderr.read()[-3000:]}")
    return took, peak / 1024


def _median(argv: list[str], env: dict[str, str], runs: int) -> float:
    return statistics.median(_timed(argv, env) for _ in range(runs))


class WatchRun:
    """`reelflow watch` in a child process; ``save`` times a save up to the watch's line."""

    def __init__(self, path: Path, env: dict[str, str], log: Path) -> None:
        self.path, self.log = path, log
        with open(log, "w") as handle:
            self.proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", "watch", str(path)],
                                         env=env, stdout=handle, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.wait_for(r"render 1: ", 1800)

    def wait_for(self, pattern: str, timeout: float = 600, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")[after:]
            if match := re.search(pattern + r".*", text):
                return match.group(0)
            if self.proc.poll() is not None:
                sys.exit(f"watch ended:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.02)
        sys.exit(f"watch: no {pattern!r} in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def save(self, edit, expect: str) -> tuple[float, str]:
        after = len(self.log.read_text(errors="replace"))
        started = time.monotonic()
        edit()
        line = self.wait_for(expect, after=after)
        return time.monotonic() - started, line

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(timeout=120)


def _edit_list(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc["shots"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)  # as editors save


def _sequence_sources(path: Path, env: dict[str, str]) -> list:
    """The clips (from the store, via the ledger) and cards of the list, for the single pass."""
    os.environ.update(REELFLOW_HOME=env["REELFLOW_HOME"])
    from reelflow.flows.plan import make_plan
    from reelflow.flows.shotlist import load_shotlist
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks.store import ClipStore

    store = ClipStore.default()
    ledger = Ledger.for_store(store)
    sources = []
    for shot in make_plan(load_shotlist(path), "final").shots:
        if shot.request is None:
            sources.append({"title": "Chapter one"})
        else:
            sources.append(str(store.path_for(ledger.read(shot.request.final_key()).sha256)))
    return sources


def cli_rows(args, work: Path) -> tuple[list[tuple[str, float, str]], float]:
    env = _env(work)
    cli = [sys.executable, "-m", "reelflow.cli"]
    rows = []
    started = _timed([*cli, "server", "start"], env)
    rows.append(("managed server start (once)", started, ""))
    state = json.loads(next((work / "home" / "prefect-server").glob("*/state.json")).read_text())
    bare_env = {**env, "PREFECT_API_URL": state["api_url"]}
    bare_file = work / "bare_flow.py"
    bare_file.write_text(BARE_FLOW)
    bare = _median([sys.executable, str(bare_file)], bare_env, args.runs)
    rows.append(("bare Prefect flow, running server", bare, "yardstick"))

    alt = "Shot 4: a red kite over the dunes, slow dolly"
    listing = _write(work / "seq.yaml", _shots(args.shots, args.resolution), args.resolution)
    alt_shot = {"id": "alt", "resolution": args.resolution, "prompt": alt}
    _write(work / "alt.yaml", [alt_shot], "540p")  # its clip downloaded, not conformed for seq
    took, tree = _timed_tree([*cli, "render", str(listing)], env)
    rows.append((f"first render from the CLI (generate + edit, {args.resolution})", took,
                 f"tree peak {tree:.0f} MB (CLI + Prefect client + ffmpeg; the emulator "
                 "and its clip renders run in it)"))
    _timed([*cli, "render", str(work / "alt.yaml")], env)   # the alternative clip: downloaded
    rerun = _median([*cli, "render", str(listing)], env, args.runs)
    rows.append(("unchanged rerun, CLI, default set-up", rerun,
                 f"{rerun / bare:.2f} x bare (target <= 1.5)"))

    sources = _sequence_sources(listing, env)
    w, h = {"540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}[args.resolution]
    single = edit_bench.measure(dict(kind="single", sources=sources, width=w, height=h,
                                     cache=str(work / "spcache"),
                                     out=str(work / "single.mp4")))["wall_s"]
    rows.append((f"single-pass of the same sequence ({args.resolution})", single, "yardstick"))

    watch = WatchRun(listing, env, work / "watch.log")
    try:
        card = min(9, args.shots // 2)
        cases = [
            ("watch: title changed", lambda s: s[card].update(title="Chapter two"), 0.03),
            ("watch: trim changed", lambda s: s[2].update(trim=[0.5, 5.0]), 0.03),
            ("watch: changed clip (downloaded)", lambda s: s[4].update(prompt=alt), 0.05),
        ]
        for n, (label, change, target) in enumerate(cases, start=2):
            took, line = watch.save(lambda c=change: _edit_list(listing, c), rf"render {n}: ")
            rows.append((label, took, f"{took / single:.3f} x single-pass (target <= {target}); "
                                      + line.split(" -> ")[0].split(": ", 1)[1]))
        took, line = watch.save(lambda: os.utime(listing), r"nothing changed: no render")
        rows.append(("watch: nothing changed (touch)", took,
                     f"target: no encode and < 1 s; {line}"))
    finally:
        watch.stop()
    return rows, single


def media_rows(args, work: Path) -> list[tuple[str, float, str]]:
    """Full first edit vs single pass at --rss-size, and the tree peak per shot count."""
    w, h = (int(v) for v in args.rss_size.split("x"))
    counts = [int(n) for n in args.rss_shots.split(",") if n]
    sources, _alt = edit_bench.make_sources(work / "media", max(counts + [args.shots]))
    rows = []
    seq = [str(p) for p in sources[:args.shots]]
    seq[min(9, args.shots // 2)] = {"title": "Chapter one\nThe harbour"}
    single = edit_bench.measure(dict(kind="single", sources=seq, width=w, height=h,
                                     cache=str(work / "media-sp"), out=str(work / "m-single.mp4")))
    full = edit_bench.measure(dict(kind="assemble", sources=seq, width=w, height=h,
                                   cache=str(work / "media-cache"), out=str(work / "m-full.mp4")))
    rows.append((f"single-pass, {args.shots} shots {w}x{h}", single["wall_s"],
                 f"tree peak {single['tree_mb']:.0f} MB"))
    rows.append((f"full first edit, {args.shots} shots {w}x{h}", full["wall_s"],
                 f"{full['wall_s'] / single['wall_s']:.3f} x single-pass (target <= 0.85); "
                 f"tree peak {full['tree_mb']:.0f} MB"))
    for n in counts:
        if n == args.shots:  # the full first edit above is that measurement
            rows.append((f"tree peak RSS, full edit {n} shots {w}x{h}", full["wall_s"],
                         f"{full['tree_mb']:.0f} MB (target <= 300 MB, flat 20 -> 100)"))
            continue
        s = [str(p) for p in sources[:n]]
        s[min(9, n // 2)] = {"title": "Chapter one\nThe harbour"}
        got = edit_bench.measure(dict(kind="assemble", sources=s, width=w, height=h,
                                      cache=str(work / f"media-rss-{n}"),
                                      out=str(work / f"m-rss-{n}.mp4")))
        rows.append((f"tree peak RSS, full edit {n} shots {w}x{h}", got["wall_s"],
                     f"{got['tree_mb']:.0f} MB (target <= 300 MB, flat 20 -> 100)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--resolution", default="720p", choices=("540p", "720p", "1080p"))
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--rss-shots", default="20,100", help="'' skips the media rows")
    parser.add_argument("--rss-size", default="1920x1080")
    parser.add_argument("--work", default="/tmp/reelflow-speed-bench")
    parser.add_argument("--skip-cli", action="store_true",
                        help="only the media rows (no Prefect, no watch)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows = [] if args.skip_cli else cli_rows(args, work)[0]
    try:
        if args.rss_shots:
            rows += media_rows(args, work)
    finally:
        subprocess.run([sys.executable, "-m", "reelflow.cli", "server", "stop"], env=_env(work),
                       capture_output=True)
    print(edit_bench.machine_line(started))
    print(f"{args.shots} shots, {args.resolution}, 0.5 s crossfades, shot {min(10, args.shots // 2 + 1)} "
          "a title card; clips from the embedded emulator (zero latency)\n")
    print("| what | wall s | ratio / notes |\n|---|---|---|")
    for label, seconds, note in rows:
        print(f"| {label} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
