"""Keyframes end to end: images and other shots as first/last frames, through the real SDK.

Local images reach the emulator as URLs it really fetches: from the loopback asset
server with a local store, as presigned URLs from a real S3 server (SeaweedFS) with S3.
"""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import SHOTLISTS, media_facts, run_cli, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture()
def keyframes_list(tmp_path):
    folder = tmp_path / "shotlists"
    shutil.copytree(SHOTLISTS, folder)
    return folder / "keyframes.yaml"


def test_keyframes_list_renders_and_changes_regenerate_only_what_builds_on_them(
        keyframes_list, home, luma_env):
    from reelflow.flows.render import render_sequence

    stats = luma_env.stats()
    report = render_sequence(str(keyframes_list))

    after = luma_env.stats()
    assert after["created"] - stats["created"] == 4
    assert after["upscaled"] - stats["upscaled"] == 1 and after["audio_added"] - stats["audio_added"] == 1
    facts = media_facts(report.output)
    assert (facts["width"], facts["height"]) == (1920, 1080)
    assert facts["frames"] == (5 * 4 - 0.5) * 24  # one 0.5 s crossfade (pullback -> arrival)
    assert report.generated == 4

    assert render_sequence(str(keyframes_list)).generated == 0
    # a new bottle image: product, and pullback and finale that build on it, are new requests
    bottle = keyframes_list.parent / "assets" / "bottle.png"
    shutil.copy(keyframes_list.parent / "assets" / "coast.png", bottle)
    before = luma_env.stats()["created"]
    changed = render_sequence(str(keyframes_list))
    assert luma_env.stats()["created"] - before == 3
    assert {r.id for r in changed.shot_results if r.status == "paid"} == {"product", "pullback", "finale"}


def test_local_image_goes_through_s3_presigned_url(tmp_path, home, luma_env, s3_server,
                                                   s3_credentials, monkeypatch):
    from reelflow.flows.render import render_sequence

    monkeypatch.setenv("REELFLOW_STORE", f"s3://{s3_server.bucket}/kf-test")
    shutil.copy(SHOTLISTS / "assets" / "bottle.png", tmp_path / "bottle.png")
    path = write_shotlist(tmp_path, [{"id": "still", "prompt": "The bottle on a table, slow push in",
                                      "resolution": "540p", "start": "bottle.png"}])
    before = luma_env.created_count()

    report = render_sequence(str(path))

    assert luma_env.created_count() - before == 1
    assert media_facts(report.output)["frames"] == 120
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_server.bucket, Prefix="kf-test/").get("Contents", [])]
    assert any(k.endswith(".png") for k in keys) and any(k.endswith(".mp4") for k in keys)


def test_real_api_with_local_image_and_no_s3_is_refused_before_spend(tmp_path, home):
    shutil.copy(SHOTLISTS / "assets" / "bottle.png", tmp_path / "bottle.png")
    path = write_shotlist(tmp_path, [{"id": "still", "prompt": "The bottle on a table",
                                      "start": "bottle.png"}])
    result = run_cli(["render", str(path)], env={
        "LUMAAI_API_KEY": "luma-not-a-real-key", "LUMAAI_BASE_URL": "https://api.invalid/dream-machine/v1",
        "REELFLOW_HOME": str(home)})
    assert result.returncode == 2
    assert "REELFLOW_STORE" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()
