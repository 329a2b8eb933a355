"""Agents API outputs derive from their inputs: keyframes, chains, edits, reframes, refs."""

from __future__ import annotations

import base64
import subprocess

import av
import httpx
import numpy as np
import pytest

from reelflow._binaries import ffmpeg_exe
from tests.emulator.support import download, probe, wait_agents

RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)


def _png(tmp_path, name: str, left: tuple, right: tuple | None = None) -> bytes:
    """A 320x180 PNG: one colour, or ``left`` and ``right`` halves."""
    right = right or left
    hexes = ["0x%02X%02X%02X" % c for c in (left, right)]
    path = tmp_path / f"{name}.png"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={hexes[0]}:s=160x180", "-f", "lavfi", "-i",
                    f"color=c={hexes[1]}:s=160x180", "-filter_complex", "hstack",
                    "-frames:v", "1", str(path)], check=True)
    return path.read_bytes()


def _data(png: bytes) -> dict:
    return {"data": base64.b64encode(png).decode(), "media_type": "image/png"}


def _frames(path, *indexes) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24").astype(float)
                   for f in container.decode(video=0)]
    return [decoded[i] for i in indexes]


def _mean(frame: np.ndarray) -> np.ndarray:
    """Mean colour away from the label (top) and counter (bottom) text."""
    h = frame.shape[0]
    return frame[h // 3: 2 * h // 3].mean(axis=(0, 1))


def _clip(agents, tmp_path, name: str, **video) -> tuple:
    video.setdefault("resolution", "360p")
    done = wait_agents(agents, agents.generations.create(prompt=name, model="ray-3.2",
                                                         video=video).id)
    return done, download(done.output[0].url, tmp_path / f"{name}.mp4")


def test_keyframes_show_each_image_at_its_frame(agents, tmp_path):
    images = [_png(tmp_path, n, c) for n, c in (("r", RED), ("b", BLUE), ("g", GREEN))]
    _, clip = _clip(agents, tmp_path, "pinned", keyframes=[_data(i) for i in images],
                    keyframe_indexes=[0, 60, 120])
    assert probe(clip)["frames"] == 120
    first, middle, last, between = _frames(clip, 0, 60, 119, 30)
    for frame, colour in ((first, RED), (middle, BLUE), (last, GREEN)):
        assert np.abs(_mean(frame) - colour).max() < 25, (_mean(frame), colour)
    halfway = (np.array(RED) + np.array(BLUE)) / 2
    assert np.abs(_mean(between) - halfway).max() < 40  # crossfading red to blue


def test_start_frame_from_a_generation_extends_it_and_from_a_url_shows_it(agents, tmp_path):
    source, source_clip = _clip(agents, tmp_path, "source")
    _, extended = _clip(agents, tmp_path, "extended",
                        start_frame={"generation_id": source.id})
    (last,), (first,) = _frames(source_clip, 119), _frames(extended, 0)
    assert np.abs(_mean(last) - _mean(first)).max() < 12
    still = wait_agents(agents, agents.generations.create(
        prompt="x", image_ref=[_data(_png(tmp_path, "ref", RED))]).id)
    _, from_url = _clip(agents, tmp_path, "from-url", end_frame={"url": still.output[0].url})
    with av.open(str(download(still.output[0].url, tmp_path / "still.png"))) as image:
        still_pixels = next(image.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    (end,) = _frames(from_url, 119)
    assert np.abs(_mean(end) - _mean(still_pixels)).max() < 25


def test_video_edit_recolours_the_source_and_keeps_its_layout(agents, tmp_path):
    source, source_clip = _clip(agents, tmp_path, "halves",
                                start_frame=_data(_png(tmp_path, "h", RED, BLUE)))
    source_url = source.output[0].url
    edited = wait_agents(agents, agents.generations.create(
        prompt="as a watercolour", model="ray-3.2", type="video_edit",
        source={"url": source_url, "media_type": "video/mp4"},
        video={"resolution": "360p", "edit": {"strength": "reimagine_3"}}).id)
    edit_clip = download(edited.output[0].url, tmp_path / "edit.mp4")
    assert probe(edit_clip)["frames"] == probe(source_clip)["frames"] == 120
    (src,), (out,) = _frames(source_clip, 0), _frames(edit_clip, 0)
    w = src.shape[1]
    assert np.abs(_mean(out) - _mean(src)).max() > 30  # visibly restyled
    left, right = _mean(out[:, : w // 4]), _mean(out[:, -w // 4:])
    assert np.abs(left - right).max() > 60  # the two halves are still two halves


def test_video_reframe_fits_the_source_into_the_new_aspect(agents, tmp_path):
    source, _ = _clip(agents, tmp_path, "wide", start_frame=_data(_png(tmp_path, "w", RED,
                                                                        BLUE)))
    reframed = wait_agents(agents, agents.generations.create(
        prompt="vertical cut", model="ray-3.2", type="video_reframe", aspect_ratio="9:16",
        source={"generation_id": source.id}, video={"resolution": "360p"}).id)
    clip = download(reframed.output[0].url, tmp_path / "tall.mp4")
    facts = probe(clip)
    assert (facts["width"], facts["height"], facts["frames"]) == (360, 640, 120)
    (frame,) = _frames(clip, 0)
    band = frame[320 - 40: 320 + 40]  # the fitted source sits in the middle band
    left, right = band[:, 20:160].mean(axis=(0, 1)), band[:, 200:340].mean(axis=(0, 1))
    assert left[0] > left[2] + 80 and right[2] > right[0] + 80  # red left, blue right
    top = frame[20:80].mean(axis=(0, 1))
    assert np.abs(top - band.mean(axis=(0, 1))).max() > 10  # padded with a darker blur


def test_a_still_shows_its_reference_images(agents, tmp_path):
    ref = _png(tmp_path, "char", GREEN)
    plain = wait_agents(agents, agents.generations.create(prompt="hero", model="uni-1").id)
    with_ref = wait_agents(agents, agents.generations.create(
        prompt="hero", model="uni-1", image_ref=[_data(ref)]).id)
    images = []
    for n, gen in enumerate((plain, with_ref)):
        with av.open(str(download(gen.output[0].url, tmp_path / f"s{n}.png"))) as image:
            images.append(next(image.decode(video=0)).to_ndarray(format="rgb24").astype(float))
    corner = [img[-45:-10, 10:45].mean(axis=(0, 1)) for img in images]  # the inset
    assert np.abs(corner[1] - GREEN).max() < 25
    assert np.abs(corner[0] - GREEN).max() > 25


def test_a_video_file_is_a_valid_edit_source(agents, tmp_path):
    _, clip = _clip(agents, tmp_path, "to-upload")
    data = clip.read_bytes()
    created = agents.files.create(mime_type="video/mp4", size_bytes=len(data))
    httpx.put(created.upload.url, content=data, headers=created.upload.headers)
    assert agents.files.complete(created.id).state == "ready"
    edited = wait_agents(agents, agents.generations.create(
        prompt="edit", model="ray-3.2", type="video_edit", source={"file_id": created.id},
        video={"resolution": "360p"}).id)
    assert probe(download(edited.output[0].url, tmp_path / "e.mp4"))["frames"] == 120
    with pytest.raises(Exception, match="video where an image"):
        agents.generations.create(prompt="x", model="ray-3.2",
                                  video={"start_frame": {"file_id": created.id}})


def test_image_edit_and_layering_start_from_their_source(agents, tmp_path):
    source = _data(_png(tmp_path, "src", RED, BLUE))
    edit = wait_agents(agents, agents.generations.create(
        prompt="make it night", model="uni-1", type="image_edit", source=source,
        aspect_ratio="16:9").id)
    layers = wait_agents(agents, agents.generations.create(
        prompt="split", model="uni-1", type="layering", source=source).id)
    assert [o.layer.label for o in layers.output] == ["subject", "background"]
    with av.open(str(download(edit.output[0].url, tmp_path / "edit.png"))) as image:
        pixels = next(image.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    w = pixels.shape[1]
    left, right = _mean(pixels[:, : w // 4]), _mean(pixels[:, -w // 4:])
    assert np.abs(left - right).max() > 60  # the source's two halves, recoloured
    assert np.abs(left - RED).max() > 30
