"""Helpers for the emulator tests: poll, download and probe through real HTTP and PyAV."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import lumaai


def wait_settled(client: lumaai.LumaAI, gen_id: str, timeout: float = 30.0):
    """Poll until the generation is completed or failed (or fail the test)."""
    deadline = time.monotonic() + timeout
    while True:
        generation = client.generations.get(gen_id)
        if generation.state in ("completed", "failed"):
            return generation
        assert generation.state in ("queued", "dreaming"), generation
        assert time.monotonic() < deadline, f"{gen_id} still {generation.state}"
        time.sleep(0.1)


def wait_completed(client: lumaai.LumaAI, gen_id: str, timeout: float = 30.0):
    """Poll until the generation is completed (or fail the test)."""
    generation = wait_settled(client, gen_id, timeout)
    assert generation.state == "completed", generation
    return generation


def wait_agents(client, gen_id: str, timeout: float = 60.0, state: str = "completed"):
    """Poll an Agents API generation until it settles; assert it ends in ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        generation = client.generations.get(gen_id)
        if generation.state in ("completed", "failed"):
            assert generation.state == state, generation
            return generation
        assert generation.state in ("queued", "processing"), generation
        assert time.monotonic() < deadline, f"{gen_id} still {generation.state}"
        time.sleep(0.1)


def download(url: str, dest: Path) -> Path:
    """Fetch an asset over HTTP (no token: asset URLs are public like a CDN's)."""
    response = httpx.get(url, timeout=60)
    response.raise_for_status()
    dest.write_bytes(response.content)
    return dest


def probe(path: Path) -> dict:
    """Codec, size, rate, decoded frame count and audio stream count, via PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {
            "codec": video.codec_context.name, "width": video.width, "height": video.height,
            "fps": Fraction(video.average_rate), "pix_fmt": video.codec_context.pix_fmt,
            "audio_streams": len(container.streams.audio),
        }
        facts["frames"] = sum(1 for _ in container.decode(video=0))
    return facts
