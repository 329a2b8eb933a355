"""Benchmark the ``preview`` quality drafts are encoded with against ``final``.

    python bench/preview_bench.py [--shots 8] [--rounds 3] [--grain 12] [--work DIR]

A draft is ray-flash-2 at 540p delivered at the list's output size, so the sources are
distinct 5 s 960x540/24 fps H.264+AAC clips with film grain (temporal noise: real footage
is never as smooth as a test pattern, and smooth patterns flatter the slower preset;
``--grain 0`` measures the smooth case too).
Each round runs the full first edit (cold cache: conforms, crossfade seams, audio, mux)
of the same 1920x1080 sequence once per quality, in its own child process
(``edit_bench.py _child``), the two orders alternating between rounds. Reported: median
wall and CPU seconds per quality and their ratio, and the output sizes. Not part of CI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_bench import CLIP_S, FPS, _ffmpeg, machine_line, measure  # noqa: E402  (bench helpers)

QUALITIES = ("final", "preview")


def make_grainy_source(path: Path, index: int, grain: int) -> Path:
    """A distinct 540p clip with moving shapes, grain and a tone (cached by file name)."""
    if not path.exists():
        video = (f"testsrc2=s=960x540:r={FPS}:d={CLIP_S},hue=h={(index * 47) % 360}"
                 + (f",noise=alls={grain}:allf=t+u" if grain else ""))
        tone = f"sine=f={220 + index * 37}:d={CLIP_S}:r=48000"
        tmp = path.with_suffix(".part.mp4")
        subprocess.run([_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f",
                        "lavfi", "-i", tone, "-c:v", "libx264", "-preset", "veryfast", "-crf",
                        "20", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(tmp)],
                       check=True)
        tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> dict[str, list[dict]]:
    work = Path(args.work)
    (work / "sources").mkdir(parents=True, exist_ok=True)
    (work / "out").mkdir(exist_ok=True)
    sources = [str(make_grainy_source(work / "sources" / f"grain{args.grain}-{i:02d}.mp4", i,
                                      args.grain))
               for i in range(args.shots)]
    results: dict[str, list[dict]] = {q: [] for q in QUALITIES}
    for round_ in range(args.rounds):
        order = QUALITIES if round_ % 2 == 0 else QUALITIES[::-1]
        for quality in order:
            cache = work / f"cache-{quality}"
            shutil.rmtree(cache, ignore_errors=True)
            spec = dict(kind="assemble", sources=sources, width=1920, height=1080,
                        quality=quality, cache=str(cache),
                        out=str(work / "out" / f"{quality}.mp4"))
            result = measure(spec)
            result["bytes"] = Path(spec["out"]).stat().st_size
            results[quality].append(result)
            print(f"  round {round_ + 1} {quality}: {result['wall_s']:.1f} s", file=sys.stderr,
                  flush=True)
    return results


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    med = {q: {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "bytes")}
           for q, rows in results.items()}
    frames = {q: {r["frames"] for r in rows} for q, rows in results.items()}
    lines = [f"{args.shots} shots of 540p with grain {args.grain} -> 1920x1080/24, 0.5 s crossfades, "
             f"full first edit (cold cache), median of {args.rounds} rounds",
             "", "| quality | wall s | CPU s | output MB | frames |", "|---|---|---|---|---|"]
    for q in QUALITIES:
        lines.append(f"| {q} | {med[q]['wall_s']:.1f} | {med[q]['cpu_s']:.1f} | "
                     f"{med[q]['bytes'] / 1e6:.1f} | {sorted(frames[q])} |")
    lines += ["", f"preview is {med['final']['wall_s'] / med['preview']['wall_s']:.2f}x faster "
                  f"(wall) and {med['final']['cpu_s'] / med['preview']['cpu_s']:.2f}x cheaper "
                  f"(CPU) than final"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grain", type=int, default=12,
                        help="strength of ffmpeg's noise filter on the sources; 0 for none")
    parser.add_argument("--work", default="/tmp/reelflow-preview-bench")
    args = parser.parse_args()
    started = time.time()
    results = run(args)
    print(machine_line(started))
    print(report(results, args))


if __name__ == "__main__":
    main()
