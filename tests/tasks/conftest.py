"""Synthetic clips for the media tests, made once per session with lavfi, and pixel helpers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from reelflow._binaries import ffmpeg_exe
from reelflow.tasks import _ffmpeg
from reelflow.tasks.media import OutputFormat, TimelineItem
from tests.helpers import sha256, spy  # noqa: F401 - sha256: the tests import it from here

class OfflineBlockSuite(BlockStandardTestSuite):
    """Prefect's block standards for a block (the subclass's ``block`` fixture), with the
    logo check offline: the suite's own downloads the logo (no network here). reelflow's
    blocks ship none, so the UI draws Prefect's default; a logo added must pass the
    suite's download check instead."""

    def test_has_a_valid_image(self, block):
        assert block._logo_url is None


#: The test delivery format: small, so every encode takes a fraction of a second.
FMT = OutputFormat(width=320, height=180, fps=24)


def _make(path: Path, video: str, audio: str | None = None, seconds: float = 5) -> Path:
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", video]
    if audio:
        argv += ["-f", "lavfi", "-i", audio, "-c:a", "aac", "-shortest"]
    argv += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12",
             "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(argv, check=True)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Source clips: moving patterns, solid colours, one with a tone, one 4:3 at 30 fps."""
    root = tmp_path_factory.mktemp("sources")
    return {
        # moving test pattern: any frame offset shows up as a PSNR collapse
        "pattern": _make(root / "pattern.mp4", "testsrc2=s=320x180:r=24"),
        "tone": _make(root / "tone.mp4", "testsrc2=s=320x180:r=24,hue=h=90",
                      "sine=frequency=440:sample_rate=44100"),
        "tone2": _make(root / "tone2.mp4", "testsrc2=s=320x180:r=24,negate",
                       "sine=frequency=660:sample_rate=48000"),
        "red": _make(root / "red.mp4", "color=c=red:s=320x180:r=24"),
        "blue": _make(root / "blue.mp4", "color=c=blue:s=320x180:r=24"),
        # 4:3 at 30 fps with a green band in the top 60 rows: cover-crop must cut it away
        "wide": _make(root / "wide.mp4",
                      "color=c=blue:s=640x480:r=30,drawbox=y=0:h=60:w=iw:color=green:t=fill"),
    }


def item(path: Path, length_s: float = 5, **kwargs) -> TimelineItem:
    """A TimelineItem for a source file, hashed for real."""
    return TimelineItem(source=path, source_sha256=sha256(path), length_s=length_s, **kwargs)


@pytest.fixture()
def ffmpeg_calls(monkeypatch) -> list[list[str]]:
    """Record every ffmpeg argv that goes through _run_ffmpeg (and still run it)."""
    return spy(monkeypatch, _ffmpeg, "_run_ffmpeg", record=list)


def video_pts(path: Path) -> list[int]:
    """Every decoded video frame's pts, in decode-output order."""
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def audio_seconds(path: Path) -> float:
    """Length of the decoded audio (samples / rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        return sum(frame.samples for frame in container.decode(stream)) / rate


def rgb_frame(path: Path, index: int, fmt: OutputFormat = FMT) -> bytes:
    """Decode frame ``index`` to packed RGB24 bytes (ffmpeg does the conversion)."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
         "-vf", f"select=eq(n\\,{index})", "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    assert len(out) == fmt.width * fmt.height * 3, f"no frame {index} in {path}"
    return out


def pixel(rgb: bytes, x: int, y: int, fmt: OutputFormat = FMT) -> tuple[int, int, int]:
    """The (r, g, b) of one pixel of an rgb_frame."""
    i = (y * fmt.width + x) * 3
    return rgb[i], rgb[i + 1], rgb[i + 2]


def psnr(a: Path, b: Path) -> tuple[float, list[float]]:
    """ffmpeg's PSNR of two videos: (average, per-frame averages)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
         "-lavfi", "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"],
        check=True, capture_output=True, text=True)
    average = float(re.search(r"PSNR y:\S+ u:\S+ v:\S+ average:(\S+)", proc.stderr).group(1))
    frames = [99.0 if v == "inf" else float(v)
              for v in re.findall(r"psnr_avg:(\S+)", proc.stdout)]
    return average, frames
