"""The Ray 3.2 surface end to end: chains, pinned keyframes, edits, reframes and loops reach
the Agents API as its requests (read back from the emulated account), render, and rerun free."""

from __future__ import annotations

import subprocess

from reelflow._binaries import ffmpeg_exe
from tests.helpers import media_facts, write_png, write_shotlist


def _clip(path, seconds: float):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=s=640x360:r=24:d={seconds}", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def test_every_kind_of_ray32_shot_renders_and_reruns_free(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence
    from reelflow.tasks._probe import probe

    write_png(tmp_path / "a.png", 640, 360, colour=40)
    write_png(tmp_path / "b.png", 640, 360, colour=220)
    _clip(tmp_path / "source.mp4", 3)
    ray = {"model": "ray-3.2", "resolution": "360p"}
    shots = [
        dict(ray, id="master", prompt="A lighthouse at dusk, waves below"),
        dict(ray, id="onward", prompt="The beam sweeps across the sea", start={"shot": "master"}),
        dict(ray, id="pinned", prompt="Day turns to night over the harbour",
             keyframes=[{"at": 0, "image": "a.png"}, {"at": 2.5, "image": "b.png"}]),
        dict(ray, id="winter", prompt="The same shot in deep winter",
             edit={"source": {"shot": "master"}, "strength": 0.25}),
        dict(ray, id="painted", prompt="As a watercolour", edit={"source": "source.mp4"}),
        dict(ray, id="vertical", reframe={"shot": "master", "aspect_ratio": "9:16"}),
        dict(ray, id="idle", prompt="Candle flame, seamless", loop=True),
    ]
    path = write_shotlist(tmp_path, shots)
    created, files = luma_env.agents_created_count(), sum(luma_env.agents.file_counts().values())

    report = render_sequence(str(path))

    assert luma_env.agents_created_count() - created == len(shots)
    assert sum(luma_env.agents.file_counts().values()) - files == 3  # two images, one clip
    ids = {r.id: r.generation_id for r in report.shot_results}
    requests = {r["id"]: r["request"] for r in luma_env.agents.records()}
    sent = {shot_id: requests[gid] for shot_id, gid in ids.items()}
    assert sent["onward"]["video"]["start_frame"] == {"generation_id": ids["master"]}
    assert sent["pinned"]["video"]["keyframe_indexes"] == [0, 60]
    assert all("file_id" in ref for ref in sent["pinned"]["video"]["keyframes"])
    assert sent["winter"]["type"] == "video_edit"
    assert sent["winter"]["source"] == {"generation_id": ids["master"]}
    assert sent["winter"]["video"]["edit"]["strength"] == "adhere_3"   # round(0.25 x 8) = 2
    assert sent["painted"]["type"] == "video_edit" and "file_id" in sent["painted"]["source"]
    assert sent["vertical"]["type"] == "video_reframe" and sent["vertical"]["aspect_ratio"] == "9:16"
    assert sent["vertical"]["prompt"] == shots[0]["prompt"]   # the source's, reused
    assert sent["idle"]["video"]["loop"] is True
    clips = {r.id: r.sha256 for r in report.shot_results}
    vertical = probe(home / "clips" / clips["vertical"][:2] / f"{clips['vertical']}.mp4")
    assert vertical.height > vertical.width
    painted = probe(home / "clips" / clips["painted"][:2] / f"{clips['painted']}.mp4")
    assert painted.frames == 3 * 24       # an edit lasts as long as its source
    assert media_facts(report.output)["frames"] == (6 * 5 + 3) * 24

    again = render_sequence(str(path))

    assert luma_env.agents_created_count() - created == len(shots)
    assert sum(luma_env.agents.file_counts().values()) - files == 3
    assert again.generated == 0
