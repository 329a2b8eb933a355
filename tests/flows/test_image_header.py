"""Keyframe images are judged from their headers, in bounded memory (issue 10, section 7):
the true reason for an image the API cannot take, truncated or corrupt files still caught,
and under 200 MB of peak memory for any input."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelflow._binaries import ffmpeg_exe
from reelflow.flows._shotlist_checks import clip_problem, image_problem
from tests.helpers import write_png, write_shotlist

RSS_LIMIT_MB = 200
_PEAK_RSS = ("import resource, sys; from reelflow.cli import main; rc = main(['plan', sys.argv[1]]); "
             "print('RSS', rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")


#: Linux carries the parent's peak RSS into a child's ru_maxrss at exec (the old mm's high
#: water mark), so a child of the big pytest process would report pytest's peak: a small
#: launcher in between gives the measured process a small parent.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _plan_in_child(path: Path) -> tuple[int, int, list[str]]:
    """`reelflow plan PATH` in a fresh process: exit code, its peak RSS in MB, stderr lines."""
    result = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _PEAK_RSS,
                             str(path)], capture_output=True, text=True, timeout=120)
    _, code, rss = result.stdout.strip().splitlines()[-1].split()
    return int(code), int(rss), result.stderr.strip().splitlines()


def test_huge_pngs_are_refused_for_their_size_in_bounded_memory(tmp_path):
    """A 16000x16000 PNG (256 MB decoded; the issue's RGB one was 807 MB) was decoded whole
    during `plan`; a valid 20000x20000 PNG was called "truncated or corrupt". The largest
    accepted one (8192x8192 RGBA) is checked whole, in the same bounded memory."""
    write_png(tmp_path / "huge.png", 16000, 16000)
    write_png(tmp_path / "huger.png", 20000, 20000)
    write_png(tmp_path / "largest.png", 8192, 8192, rgba=True)    # 268 MB decoded: accepted
    assert (tmp_path / "huge.png").stat().st_size < 1_000_000
    path = write_shotlist(tmp_path, [
        {"id": name, "prompt": "A lighthouse at night, beams sweeping", "start": f"{name}.png"}
        for name in ("huge", "huger", "largest")])

    code, rss_mb, lines = _plan_in_child(path)

    assert code == 2 and rss_mb < RSS_LIMIT_MB, (rss_mb, lines)
    assert lines == [
        "list.yaml: shot 1 (huge): start: 'huge.png' is 16000x16000 pixels; keyframe images may "
        "be at most 8192 pixels a side: scale it down",
        "list.yaml: shot 2 (huger): start: 'huger.png' is 20000x20000 pixels; keyframe images may "
        "be at most 8192 pixels a side: scale it down"]


def test_a_file_larger_than_the_api_takes_is_refused_for_its_size(tmp_path):
    big = write_png(tmp_path / "big.png", 64, 64)
    with big.open("ab") as fh:                  # bytes after IEND: still a valid image, 21 MB
        fh.truncate(21 * 1024 * 1024)
    assert image_problem(big, "big.png") == "'big.png' is 21.0 MB; keyframe images may be at most 20 MB"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    """Small real images from ffmpeg: PNG (interlaced too), JPEG, WebP lossy and lossless."""
    folder = tmp_path_factory.mktemp("samples")
    made = {}
    for name, args in (("png", []), ("interlaced.png", ["-flags", "+ildct"]),
                       ("jpg", ["-q:v", "4"]), ("webp", []), ("lossless.webp", ["-lossless", "1"])):
        out = folder / f"sample.{name}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=162x90", "-frames:v", "1", *args, str(out)], check=True)
        made[name] = out.read_bytes()
    return made


def test_real_images_of_every_kind_pass(samples, tmp_path):
    for name, data in samples.items():
        path = tmp_path / f"ok.{name}"
        path.write_bytes(data)
        assert image_problem(path, path.name) is None, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_truncation_is_caught(samples, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(samples)))
    whole = samples[name]
    cut = data.draw(st.integers(1, len(whole) - 1))
    path = tmp_path / f"cut.{name}"
    path.write_bytes(whole[:cut])
    problem = image_problem(path, "cut")
    assert problem is not None and (("does not decode as a" in problem and "truncated" in problem)
                                    or "is not a PNG, JPEG or WebP image" in problem), problem


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupt_bytes_never_crash_the_check(samples, tmp_path, data):
    """Any bytes after a real signature: a problem line or a pass, never an exception."""
    name = data.draw(st.sampled_from(sorted(samples)))
    whole = bytearray(samples[name])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(8, len(whole) - 1))
        whole[at] = data.draw(st.integers(0, 255))
    path = tmp_path / f"bad.{name}"
    path.write_bytes(bytes(whole))
    problem = image_problem(path, "bad")
    assert problem is None or problem.startswith("'bad' ")


def test_a_png_whose_pixel_data_is_short_or_flipped_is_caught(tmp_path):
    """Checksums right but too few rows (a re-encoded cut), and one flipped bit in IDAT."""
    path = write_png(tmp_path / "a.png", 300, 200)
    data = path.read_bytes()
    ihdr = data[8:33]
    rows = zlib.compress((b"\x00" + b"\x80" * 300) * 199)           # one row short
    short = tmp_path / "short.png"
    short.write_bytes(data[:8] + ihdr + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    assert "pixel data is incomplete" in image_problem(short, "short.png")
    flipped = bytearray(data)
    flipped[45] ^= 0x10                                              # inside IDAT
    (tmp_path / "flipped.png").write_bytes(bytes(flipped))
    problem = image_problem(tmp_path / "flipped.png", "f.png")
    assert problem.startswith("'f.png' does not decode as a PNG image: ")
    assert "corrupt" in problem


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_an_8k_edit_source_clip_is_checked_in_bounded_memory(tmp_path):
    """A ray-3.2 edit's source clip was decoded frame by frame (209 MB peak for 8192x4320);
    now its frames are counted from the demuxed packets and at most one is decoded."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=8192x4320:rate=24", "-frames:v", "6", "-c:v", "libx264",
                    "-preset", "ultrafast", str(tmp_path / "big.mp4")], check=True, timeout=120)
    path = write_shotlist(tmp_path, [{"id": "a", "model": "ray-3.2", "prompt": "As a watercolour",
                                      "edit": {"source": "big.mp4"}}])
    code, rss_mb, lines = _plan_in_child(path)
    assert code == 0 and rss_mb < RSS_LIMIT_MB, (rss_mb, lines)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((tmp_path / "big.mp4").read_bytes()[:200_000])
    assert clip_problem(cut, "cut.mp4", 18) == ("'cut.mp4' is not a readable video clip", None)
