"""Small helpers the tests share: shot lists on disk, media checks through real ffmpeg/PyAV."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import yaml

from reelflow._binaries import ffmpeg_exe

REPO = Path(__file__).resolve().parents[1]
#: The project's own shot lists that must always render (teaser.yaml, keyframes.yaml, assets/).
SHOTLISTS = REPO / "tests" / "data" / "shotlists"
#: A recognisable key: tests grep everything reelflow writes for it.
TEST_KEY = "luma-test-key-DO-NOT-LEAK-7f3a"


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `reelflow ARGS` in a child process (the console script's code path)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "reelflow.cli", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=cwd)


def render_together(path: Path, env: dict[str, str], out_dir: Path, count: int = 2) -> list[dict]:
    """Start `reelflow render PATH --json` COUNT times at once (outputs out0.mp4, out1.mp4, ...
    in OUT_DIR); assert each exits 0 and return their JSON reports in start order."""
    import json

    runs = [subprocess.Popen([sys.executable, "-m", "reelflow.cli", "render", str(path), "--json",
                              "--out", str(out_dir / f"out{i}.mp4")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(count)]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        reports.append(json.loads(out))
    return reports


def start_standalone_emulator(data: Path, latency: float = 0) -> tuple[subprocess.Popen, str]:
    """`reelflow emulator` in a child process; returns it and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", "emulator", "--port", "0",
                             "--data", str(data), "--latency", str(latency)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url.rstrip(".,")


def emulator_created(url: str) -> int:
    """How many generations the emulator's account has created (its test-only stats route)."""
    import httpx

    return httpx.get(f"{url}/_emulator/stats", timeout=10).json()["created"]


def agents_created(url: str) -> int:
    """How many Agents API (ray-3.2) generations the emulator's account has created."""
    import httpx

    return httpx.get(f"{url}/_emulator/stats", timeout=10).json()["agents"]["created"]


def write_shotlist(directory: Path, shots: list[dict], *, name: str = "list.yaml",
                   output: dict | None = None, defaults: dict | None = None) -> Path:
    """Write a version-1 shot list and return its path."""
    doc = {"version": 1, "title": "Test", "shots": shots}
    if defaults:
        doc["defaults"] = defaults
    doc["output"] = output or {"path": "out.mp4", "resolution": "540p", "fps": 24}
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    """The content hash the store and the caches are keyed by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spy(monkeypatch, owner, name: str, record=lambda value: value) -> list:
    """Replace ``owner.name`` with a wrapper that still calls it and appends
    ``record(first argument)`` of every call to the list returned."""
    calls: list = []
    real = getattr(owner, name)

    def spying(first, *args, **kwargs):
        calls.append(record(first))
        return real(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, spying)
    return calls


def media_facts(path: Path) -> dict:
    """Codecs, size, rate, decoded frame count, pts steps and durations, read by decoding."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        facts = {
            "vcodec": video.codec_context.name, "width": video.width, "height": video.height,
            "fps": Fraction(video.average_rate), "acodec": audio.codec_context.name if audio else None,
        }
        pts = [frame.pts for frame in container.decode(video=0)]
        facts["frames"] = len(pts)
        steps = {b - a for a, b in zip(pts, pts[1:])}
        facts["pts_steps"] = steps
        facts["video_s"] = float(len(pts) / facts["fps"])
    if audio is not None:
        with av.open(str(path)) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
            facts["audio_s"] = samples / container.streams.audio[0].rate
    return facts


def decode_errors(path: Path) -> str:
    """What ffmpeg prints at -v error while decoding the whole file (empty when clean)."""
    result = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=300)
    return result.stderr.strip() + ("" if result.returncode == 0 else f" (exit {result.returncode})")


def write_png(path: Path, width: int, height: int, *, colour: int = 128, rgba: bool = False) -> Path:
    """A valid PNG of any size (grey, or RGBA), made in O(row) memory and well under a second:
    one constant row deflated once, its self-contained (full-flushed) deflate block repeated
    for every row, then the zlib trailer (16000x16000 grey: ~400 kB on disk, 256 MB decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes([colour]) * (width * (4 if rgba else 1))   # filter 0, 8-bit samples
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)                  # raw deflate blocks
    block = deflate.compress(row) + deflate.flush(zlib.Z_FULL_FLUSH)   # position independent
    adler = 1
    for _ in range(height):
        adler = zlib.adler32(row, adler)
    stream = b"\x78\xda" + block * height + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6 if rgba else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream)
                     + chunk(b"IEND", b""))
    return path


def flip_bytes(path: Path, at: int = 1000, count: int = 64) -> None:
    """Change ``count`` bytes of a file in place, keeping its size (a bad disk, a stray write)."""
    with open(path, "r+b") as handle:
        handle.seek(at)
        data = handle.read(count)
        handle.seek(at)
        handle.write(bytes(b ^ 0xFF for b in data))


def damage(path: Path, how: str) -> None:
    """Damage a kept file: ``"cut short"`` (truncated) or ``"bytes changed"`` (same size)."""
    if how == "cut short":
        os.truncate(path, min(20_000, path.stat().st_size // 2))
    else:
        flip_bytes(path, at=path.stat().st_size // 2)
