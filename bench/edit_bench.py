"""Benchmark the media layer: smart-render edits vs a single-pass render, concat copy, MoviePy.

    python bench/edit_bench.py [--shots 20] [--quick] [--skip-moviepy] [--work DIR]

For an N-shot 1080p/24 fps sequence with 0.5 s crossfades, built from distinct cached
5 s 720p H.264+AAC source clips (shot 10 is a title card), each of these runs as its
own child process (``edit_bench.py _child SPEC``):

1. full first edit: ``assemble`` from an empty cache (title card, conforms, seams, audio, mux)
2. rebuild after one source clip was replaced by a different one (cache warm)
3. rebuild after the title card's text changed (cache warm)
4. the single-pass filtergraph render of the same sequence (``_single_pass_reference``)
5. a concat-demuxer stream copy of the source clips (no transitions, no title)
6. MoviePy 2.x crossfades of the same sequence (libx264, fps 24, threads 2)

Wall time is measured around the child; CPU time is user+sys of the child and of the
ffmpeg processes it waited for (``getrusage`` SELF + CHILDREN inside the child); peak RSS
is the Python process's own (RUSAGE_SELF maxrss), the largest ffmpeg child's, and the
whole process tree's (sampled every 0.1 s from /proc). Then the 20-vs-100-shot RSS
comparison runs the full edit cold at 540p. Not part of CI; single runs on a shared
machine, so read ratios rather than seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

XFADE_S = 0.5
CLIP_S = 5.0
FPS = 24
RSS_LIMIT_MB = 300.0
RSS_GROWTH = 1.10  # "no growth": 100 shots within 10% of 20 shots


# ----------------------------------------------------------------------------- sources

def _ffmpeg() -> str:
    from reelflow._binaries import ffmpeg_exe
    return ffmpeg_exe()


def make_source(path: Path, index: int, alt: bool = False) -> Path:
    """A distinct 5 s 720p/24 H.264 clip with an AAC sine tone (cached by file name)."""
    if path.exists():
        return path
    hue = (index * 47) % 360
    pattern = "testsrc" if alt else "testsrc2"
    video = (f"{pattern}=s=1280x720:r={FPS}:d={CLIP_S},hue=h={hue}:s={1 + (index % 3) * 0.5},"
             f"drawbox=x={(index * 53) % 1100}:y={(index * 31) % 600}:w=160:h=120"
             f":color=0x{(index * 2654435761) % 0xFFFFFF:06x}:t=fill")
    tone = f"sine=f={220 + index * 37 + (500 if alt else 0)}:d={CLIP_S}:r=48000"
    tmp = path.with_suffix(".part.mp4")
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi",
                    "-i", tone, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
                    "-shortest", str(tmp)], check=True)
    tmp.replace(path)
    return path


def make_sources(work: Path, count: int) -> tuple[list[Path], Path]:
    """Make (once) ``count`` distinct clips plus one different clip for the replace test."""
    folder = work / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"clip{i:03d}.mp4", i, False) for i in range(count)]
    jobs.append((folder / "alt.mp4", 7, True))
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        paths = list(pool.map(lambda job: make_source(*job), jobs))
    return paths[:-1], paths[-1]


# ----------------------------------------------------------------------------- child side

class TreeSampler(threading.Thread):
    """Sample the RSS of this process plus all its descendants from /proc every 0.1 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.stop = threading.Event()

    @staticmethod
    def _tree_kb(root: int) -> int:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        tree, frontier = {root}, [root]
        while frontier:
            pid = frontier.pop()
            kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
            tree.update(kids)
            frontier.extend(kids)
        total = 0
        for pid in tree:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, self._tree_kb(os.getpid()))


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _items(spec: dict, fmt, cache: Path) -> list:
    """Timeline items for the spec; a ``{"title": text}`` entry becomes a title card."""
    from reelflow.tasks._pieces import TimelineItem
    from reelflow.tasks._encode import render_title_card

    items = []
    for i, src in enumerate(spec["sources"]):
        if isinstance(src, dict):
            path = render_title_card(src["title"], background="#203040", duration_s=CLIP_S,
                                     fmt=fmt, cache_dir=cache)
        else:
            path = Path(src)
        items.append(TimelineItem(source=path, source_sha256=_sha(path), length_s=CLIP_S,
                                  transition="crossfade", transition_s=XFADE_S, label=f"s{i:03d}"))
    return items


def _moviepy(spec: dict, out: Path) -> None:
    from moviepy import VideoFileClip, afx, concatenate_videoclips, vfx

    size = (spec["width"], spec["height"])
    clips, n = [], len(spec["paths"])
    for i, path in enumerate(spec["paths"]):
        clip = VideoFileClip(path).subclipped(0, CLIP_S).resized(size)
        fx, afxs = [], []
        if i > 0:
            fx.append(vfx.CrossFadeIn(XFADE_S))
            afxs.append(afx.AudioFadeIn(XFADE_S))
        if i < n - 1:
            fx.append(vfx.CrossFadeOut(XFADE_S))
            afxs.append(afx.AudioFadeOut(XFADE_S))
        clip = clip.with_effects(fx)
        if clip.audio is not None:
            clip = clip.with_audio(clip.audio.with_effects(afxs))
        clips.append(clip)
    final = concatenate_videoclips(clips, method="compose", padding=-XFADE_S)
    final.write_videofile(str(out), codec="libx264", fps=FPS, threads=2, audio_codec="aac",
                          preset="veryfast", ffmpeg_params=["-crf", "20"], logger=None,
                          temp_audiofile_path=str(out.parent))  # not into the cwd


def child(spec: dict) -> dict:
    """Run one measured job in this process; return its figures."""
    sampler = TreeSampler()
    sampler.start()
    out, result = Path(spec["out"]), {}
    kind = spec["kind"]
    if kind in ("assemble", "single"):
        from reelflow.tasks._assemble import _single_pass_reference, assemble
        from reelflow.tasks._ffmpeg import OutputFormat

        fmt = OutputFormat(width=spec["width"], height=spec["height"], fps=FPS,
                           quality=spec.get("quality", "final"))
        cache = Path(spec["cache"])
        items = _items(spec, fmt, cache)
        if kind == "assemble":
            res = assemble(items, fmt, out, cache)
            result.update(encoded=res.encoded_pieces, reused=res.reused_pieces)
        else:
            _single_pass_reference(items, fmt, out)
    elif kind == "concat":
        listing = out.with_suffix(".txt")
        listing.write_text("".join(f"file '{p}'\n" for p in spec["paths"]))
        subprocess.run([_ffmpeg(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                        str(listing), "-c", "copy", str(out)], check=True)
    elif kind == "moviepy":
        _moviepy(spec, out)
    sampler.stop.set()
    sampler.join()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(cpu_s=me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                  py_rss_mb=me.ru_maxrss / 1024, ff_rss_mb=kids.ru_maxrss / 1024,
                  tree_mb=max(sampler.peak_kb, me.ru_maxrss) / 1024)
    return result


# ----------------------------------------------------------------------------- parent side

def measure(spec: dict) -> dict:
    """Run ``spec`` in a fresh child process; add its wall time and output checks."""
    started = time.monotonic()
    # cwd: the output folder, so no tool drops temp files into the caller's directory.
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_child",
                           json.dumps(spec)], capture_output=True, text=True,
                          cwd=Path(spec["out"]).parent)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{spec['kind']} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(wall_s=wall, **probe(Path(spec["out"])))
    return result


def probe(path: Path) -> dict:
    """Decoded-packet frame count and audio-minus-video duration of the output."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for pkt in container.demux(video) if pkt.size)
        durations = {s.type: float(s.duration * s.time_base) for s in container.streams
                     if s.duration is not None}
    drift = durations.get("audio", 0.0) - durations.get("video", 0.0)
    return {"frames": frames, "av_drift_s": drift if "audio" in durations else None}


def run_all(args: argparse.Namespace) -> list[tuple[str, dict]]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shots, rss_shots = args.shots, args.rss_shots
    sources, alt = make_sources(work, max(shots, rss_shots))
    title = min(9, shots // 2)  # shot 10 (1-based)
    w, h = (960, 540) if args.quick else (1920, 1080)
    tag = f"{w}x{h}-{shots}"
    seq = [str(p) for p in sources[:shots]]
    seq_title = [*seq[:title], {"title": "Chapter one\nThe harbour"}, *seq[title + 1:]]
    cache = work / f"cache-{tag}"
    _clear(cache)
    base = dict(width=w, height=h, cache=str(cache))
    out = work / "out"
    out.mkdir(exist_ok=True)
    changed = list(seq_title)
    changed[min(4, shots - 1) if title != 4 else 3] = str(alt)
    retitled = [*changed[:title], {"title": "Chapter two\nThe lighthouse"}, *changed[title + 1:]]
    card = work / f"card-{tag}.mp4"  # the first card, for the concat-free MoviePy run
    rows = []
    plan = [
        ("full first edit (cold cache)", dict(kind="assemble", sources=seq_title)),
        ("rebuild: one clip replaced", dict(kind="assemble", sources=changed)),
        ("rebuild: title text changed", dict(kind="assemble", sources=retitled)),
        ("single-pass filtergraph", dict(kind="single", sources=seq_title,
                                         cache=str(work / f"spcache-{tag}"))),
        ("concat demuxer copy (no xfade)", dict(kind="concat", paths=seq)),
    ]
    for i, (label, spec) in enumerate(plan):
        spec = {**base, **spec, "out": str(out / f"{tag}-{i}.mp4")}
        rows.append((label, measure(spec)))
        print(f"  done: {label} {rows[-1][1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    if not args.skip_moviepy:
        _title_file(work, w, h, seq_title[title]["title"], card)
        paths = [*seq[:title], str(card), *seq[title + 1:]]
        spec = dict(kind="moviepy", paths=paths, width=w, height=h,
                    out=str(out / f"{tag}-moviepy.mp4"))
        rows.append(("MoviePy crossfades", measure(spec)))
        print(f"  done: moviepy {rows[-1][1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    for n in (shots, rss_shots):
        t = min(9, n // 2)
        s = [str(p) for p in sources[:n]]
        s[t] = {"title": "Chapter one\nThe harbour"}
        c = work / f"cache-rss-{n}"
        _clear(c)
        spec = dict(kind="assemble", sources=s, width=960, height=540, cache=str(c),
                    out=str(out / f"rss-{n}.mp4"))
        rows.append((f"full edit {n} shots @540p (RSS)", measure(spec)))
        print(f"  done: rss {n} {rows[-1][1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    return rows


def _title_file(work: Path, w: int, h: int, text: str, dest: Path) -> None:
    """The same title card as a file for MoviePy (rendered by reelflow, not timed)."""
    from reelflow.tasks._ffmpeg import OutputFormat
    from reelflow.tasks._encode import render_title_card

    fmt = OutputFormat(width=w, height=h, fps=FPS)
    path = render_title_card(text, background="#203040", duration_s=CLIP_S, fmt=fmt,
                             cache_dir=work / "cards")
    dest.write_bytes(Path(path).read_bytes())


def _clear(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def report(rows: list[tuple[str, dict]], args: argparse.Namespace) -> str:
    by = dict(rows)
    single = by["single-pass filtergraph"]["wall_s"]
    w, h = (960, 540) if args.quick else (1920, 1080)
    seq_s = args.shots * CLIP_S - (args.shots - 1) * XFADE_S
    lines = [
        f"{args.shots} shots -> {w}x{h}@{FPS}, {XFADE_S} s crossfades ({seq_s:g} s, "
        f"{round(seq_s * FPS)} frames expected), sources 5 s 720p H.264+AAC, "
        f"shot {min(9, args.shots // 2) + 1} a title card",
        "",
        "| run | wall s | × single-pass | CPU s | py RSS MB | max ffmpeg RSS MB | "
        "tree peak MB | frames | a−v s | encoded/reused |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        drift = "–" if r["av_drift_s"] is None else f"{r['av_drift_s']:+.3f}"
        pieces = f"{r['encoded']}/{r['reused']}" if "encoded" in r else "–"
        lines.append(f"| {label} | {r['wall_s']:.1f} | {r['wall_s'] / single:.3f} | "
                     f"{r['cpu_s']:.1f} | {r['py_rss_mb']:.0f} | {r['ff_rss_mb']:.0f} | "
                     f"{r['tree_mb']:.0f} | {r['frames']} | {drift} | {pieces} |")
    full = by["full first edit (cold cache)"]
    one = by["rebuild: one clip replaced"]
    small = by[f"full edit {args.shots} shots @540p (RSS)"]["py_rss_mb"]
    big = by[f"full edit {args.rss_shots} shots @540p (RSS)"]["py_rss_mb"]
    peak = max(r["py_rss_mb"] for label, r in rows if "edit" in label or "rebuild" in label)
    targets = [
        (f"one-clip rebuild ≤ 0.10 × single-pass: {one['wall_s'] / single:.3f}",
         one["wall_s"] <= 0.10 * single),
        (f"full first edit ≤ 1.2 × single-pass: {full['wall_s'] / single:.3f}",
         full["wall_s"] <= 1.2 * single),
        (f"reelflow Python process peak RSS ≤ {RSS_LIMIT_MB:.0f} MB: {peak:.0f} MB "
         "(max over the assemble runs, RUSAGE_SELF, ffmpeg children excluded)",
         peak <= RSS_LIMIT_MB),
        (f"no RSS growth {args.shots} -> {args.rss_shots} shots (≤ {RSS_GROWTH:.2f}×, full "
         f"edit at 540p output): {small:.0f} -> {big:.0f} MB", big <= small * RSS_GROWTH),
    ]
    lines += ["", "Targets:"]
    lines += [f"- {text}: **{'met' if ok else 'NOT met'}**" for text, ok in targets]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=None)
    parser.add_argument("--rss-shots", type=int, default=None,
                        help="shots for the RSS-growth run (default 100; 12 with --quick)")
    parser.add_argument("--quick", action="store_true", help="6 shots at 540p: a smoke test")
    parser.add_argument("--skip-moviepy", action="store_true")
    parser.add_argument("--work", default="/tmp/reelflow-edit-bench",
                        help="work dir: cached sources, caches, outputs")
    args = parser.parse_args()
    args.shots = args.shots or (6 if args.quick else 20)
    args.rss_shots = args.rss_shots or (12 if args.quick else 100)
    if args.shots < 2:
        parser.error("--shots must be at least 2")
    started = time.time()
    rows = run_all(args)
    print(machine_line(started))
    print(report(rows, args))


def machine_line(started: float) -> str:
    """When, on what and with which ffmpeg a bench ran, and how long it took in all."""
    version = subprocess.run([_ffmpeg(), "-version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    return (f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; "
            f"nproc {os.cpu_count()}; {platform.machine()}; {version}; "
            f"python {platform.python_version()}; total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
