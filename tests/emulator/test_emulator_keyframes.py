"""Keyframes for real: image URLs fetched over HTTP, generation references cut from clips."""

from __future__ import annotations

import functools
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import httpx
import lumaai
import numpy as np
import pytest

from reelflow.emulator import Emulator
from reelflow.emulator.faults import INPUT_FRAMES_FAILED
from tests.emulator.support import download, wait_completed, wait_settled

ASSETS = Path(__file__).resolve().parents[1] / "data" / "shotlists" / "assets"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass


def _serve(directory: Path) -> ThreadingHTTPServer:
    """A loopback file server for ``directory`` in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def image_server():
    """The shot-list assets over loopback HTTP (its directory listing is no image)."""
    server = _serve(ASSETS)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _frames(path: Path) -> list[np.ndarray | None]:
    """Every frame decoded; only the first, middle and last converted to RGB arrays."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    keep = {0, len(frames) // 2, len(frames) - 1}
    return [f.to_ndarray(format="rgb24").astype(float) if i in keep else None
            for i, f in enumerate(frames)]


def _image_mean(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").reshape(-1, 3).mean(0)


def _mean(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(0)


def _image(url: str) -> dict:
    return {"type": "image", "url": url}


def test_image_keyframes_pan_over_the_fetched_images(client, emu, image_server, tmp_path):
    start = client.generations.create(
        model="ray-flash-2", prompt="slow push in", resolution="540p",
        keyframes={"frame0": _image(f"{image_server}/bottle.png")})
    both = client.generations.create(
        model="ray-flash-2", resolution="540p",  # image-to-video: no prompt needed
        keyframes={"frame0": _image(f"{image_server}/bottle.png"),
                   "frame1": _image(f"{image_server}/coast.png")})
    bottle, coast = _image_mean(ASSETS / "bottle.png"), _image_mean(ASSETS / "coast.png")

    done = wait_completed(client, start.id)
    frames = _frames(download(done.assets.video, tmp_path / "start.mp4"))
    assert len(frames) == 120 and frames[0].shape == (540, 960, 3)
    assert np.abs(_mean(frames[0]) - bottle).max() < 6
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # it moves: a zoom, not a still

    frames = _frames(download(wait_completed(client, both.id).assets.video, tmp_path / "b.mp4"))
    assert len(frames) == 120
    assert np.abs(_mean(frames[0]) - bottle).max() < 6
    assert np.abs(_mean(frames[-1]) - coast).max() < 6
    assert np.abs(_mean(frames[60]) - (bottle + coast) / 2).max() < 20  # a crossfade

    stored = list((emu.data_dir / "inputs").glob("*.png"))
    assert len(stored) == 2  # fetched once each, kept by content


def test_same_request_and_image_bytes_render_the_same_clip(client, image_server):
    body = dict(model="ray-flash-2", prompt="same again", resolution="540p",
                keyframes={"frame1": _image(f"{image_server}/coast.png")})
    urls = [wait_completed(client, client.generations.create(**body).id).assets.video
            for _ in range(2)]
    first, second = (httpx.get(url).content for url in urls)
    assert first == second and first[4:8] == b"ftyp"


def test_unreadable_image_urls_fail_the_generation(client, image_server):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    urls = [f"http://127.0.0.1:{closed}/x.png", f"{image_server}/missing.png",
            f"{image_server}/"]  # the directory listing: HTML, not an image
    ids = [client.generations.create(model="ray-2", prompt="will not load",
                                     keyframes={"frame0": _image(url)}).id for url in urls]
    for gen_id in ids:
        failed = wait_settled(client, gen_id)
        assert (failed.state, failed.failure_reason) == ("failed", INPUT_FRAMES_FAILED)
        assert failed.assets.video is None


def test_images_are_fetched_at_create_while_the_url_still_works(tmp_path):
    server = _serve(ASSETS)
    url = f"http://127.0.0.1:{server.server_address[1]}/bottle.png"
    with Emulator(tmp_path / "acct", latency=1.0) as emu:
        client = lumaai.LumaAI(auth_token="t", base_url=emu.base_url, max_retries=0)
        gen = client.generations.create(model="ray-flash-2", prompt="fetched early",
                                        resolution="540p", keyframes={"frame0": _image(url)})
        for _ in range(100):  # the fetch runs in the background right after the create
            if emu.account.record(gen.id).get("inputs"):
                break
            threading.Event().wait(0.02)
        server.shutdown()
        server.server_close()  # the URL is dead before the generation renders
        assert wait_completed(client, gen.id).state == "completed"


def test_generation_keyframes_extend_and_lead_into_a_clip(client, tmp_path):
    base = client.generations.create(model="ray-flash-2", prompt="the original shot",
                                     resolution="540p")
    base_frames = _frames(download(wait_completed(client, base.id).assets.video,
                                   tmp_path / "base.mp4"))
    ref = {"type": "generation", "id": base.id}
    forward = client.generations.create(model="ray-flash-2", prompt="what happens next",
                                        resolution="540p", keyframes={"frame0": ref})
    backward = client.generations.create(model="ray-flash-2", prompt="what came before",
                                         resolution="540p", keyframes={"frame1": ref})
    after = _frames(download(wait_completed(client, forward.id).assets.video,
                             tmp_path / "fwd.mp4"))
    before = _frames(download(wait_completed(client, backward.id).assets.video,
                              tmp_path / "bwd.mp4"))
    assert len(after) == len(before) == 120
    # Per pixel: the new clip starts on the old one's last frame (labels aside).
    assert np.abs(after[0] - base_frames[-1]).mean() < 6
    assert np.abs(after[0] - base_frames[0]).mean() > np.abs(after[0] - base_frames[-1]).mean()
    assert np.abs(before[-1] - base_frames[0]).mean() < 6


def test_generation_keyframes_must_be_completed(tmp_path):
    with Emulator(tmp_path / "acct", latency=60) as emu:
        client = lumaai.LumaAI(auth_token="t", base_url=emu.base_url, max_retries=0)
        pending = client.generations.create(model="ray-2", prompt="still dreaming")
        with pytest.raises(lumaai.BadRequestError) as err:
            client.generations.create(model="ray-2", prompt="extend it", keyframes={
                "frame0": {"type": "generation", "id": pending.id}})
        assert "is not completed" in err.value.body["detail"]
        assert emu.created_count() == 1
