"""Shot lists from S3 are untrusted input (issue 10, section 5): every file they name stays
inside the list's mirrored folder; a local list may still name any path."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from tests.helpers import run_cli, sha256, write_png

SHOT = {"id": "evil", "prompt": "A lighthouse at night, beams sweeping", "resolution": "540p"}


def _upload(client, bucket: str, key: str, doc: dict) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=yaml.safe_dump(doc, sort_keys=False).encode())


def test_an_s3_list_cannot_name_files_outside_its_folder(tmp_path, home, luma_env, s3_server,
                                                         s3_credentials, prefect_api):
    outside = tmp_path / "x"
    outside.mkdir()
    private = write_png(outside / "private.png", 64, 48, colour=7)
    music = outside / "private.wav"
    music.write_bytes(b"RIFF")                       # never opened: refused for where it is
    prefix = f"evil-{secrets.token_hex(4)}"
    mirror = home / "production" / "s3" / s3_server.bucket / prefix
    escape = os.path.relpath(outside / "evil.mp4", mirror)      # ../../../../.../x/evil.mp4
    assert escape.startswith("../")
    client = s3_server.client()
    clip = outside / "private.mp4"
    clip.write_bytes(b"\0" * 64)                     # never opened either
    _upload(client, s3_server.bucket, f"{prefix}/e.yaml", {
        "version": 1, "shots": [
            {**SHOT, "start": str(private), "end": "../e2/b.png"},
            {"id": "pinned", "model": "ray-3.2", "prompt": "A harbour at dawn, gulls overhead",
             "keyframes": [{"at": 0, "image": "~/private.png"}]},
            {"id": "restyled", "model": "ray-3.2", "prompt": "The same, as a watercolour",
             "edit": {"source": str(clip)}}],
        "output": {"path": escape, "resolution": "540p", "fps": 24, "music": str(music)}})
    before = luma_env.created_count()

    result = run_cli(["render", f"s3://{s3_server.bucket}/{prefix}/e.yaml"],
                     env={"PREFECT_API_URL": prefect_api})

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    fields = sorted(line.split(": ")[-2] for line in lines)
    assert fields == ["edit.source", "end", "keyframes[0].image", "output.music", "output.path",
                      "start"], lines
    assert all(line.startswith("e.yaml: ") and "outside the shot list's folder" in line
               for line in lines), lines
    assert luma_env.created_count() == before                  # nothing sent to the API
    assert sorted(outside.iterdir()) == sorted([private, music, clip])  # no evil.mp4, no deliverables
    stored = [p for p in home.rglob("*") if p.is_file() and p.stat().st_size == private.stat().st_size]
    assert all(sha256(p) != sha256(private) for p in stored)    # nor copied to the store
    published = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)["Contents"]
    assert [o["Key"] for o in published] == [f"{prefix}/e.yaml"]


def test_files_inside_the_s3_folder_and_any_path_in_a_local_list_are_accepted(
        tmp_path, home, s3_server, s3_credentials):
    outside = tmp_path / "x"
    outside.mkdir()
    private = write_png(outside / "private.png", 64, 48)
    prefix = f"good-{secrets.token_hex(4)}"
    client = s3_server.client()
    client.upload_file(str(private), s3_server.bucket, f"{prefix}/assets/frame.png")
    _upload(client, s3_server.bucket, f"{prefix}/ok.yaml", {
        "version": 1, "shots": [{**SHOT, "start": "assets/frame.png", "end": "./assets/../assets/frame.png"}],
        "output": {"path": "renders/sub/ok.mp4", "resolution": "540p", "fps": 24}})

    remote = run_cli(["plan", f"s3://{s3_server.bucket}/{prefix}/ok.yaml", "--json"])

    assert remote.returncode == 0, remote.stderr
    mirror = home / "production" / "s3" / s3_server.bucket / prefix
    assert Path(yaml.safe_load(remote.stdout)["output"]) == mirror / "renders" / "sub" / "ok.mp4"
    local = tmp_path / "local"
    local.mkdir()
    doc = {"version": 1, "shots": [{**SHOT, "start": str(private)}],
           "output": {"path": str(outside / "out.mp4"), "resolution": "540p", "fps": 24}}
    (local / "l.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    mine = run_cli(["plan", str(local / "l.yaml"), "--json"])
    assert mine.returncode == 0, mine.stderr                    # the user owns both paths
    assert Path(yaml.safe_load(mine.stdout)["output"]) == outside / "out.mp4"


def test_the_backstop_finds_any_path_outside_the_folder(tmp_path):
    """Behind the per-field checks: every Path in the resolved list, whatever its field."""
    from reelflow.flows._shotlist_checks import escaping_paths
    from reelflow.flows.shotlist import load_shotlist

    folder = tmp_path / "mirror"
    folder.mkdir()
    write_png(folder / "in.png", 16, 16)
    write_png(tmp_path / "out.png", 16, 16)
    (folder / "l.yaml").write_text(yaml.safe_dump({
        "version": 1, "shots": [{**SHOT, "start": "in.png", "end": "../out.png"}],
        "output": {"path": "../x.mp4", "resolution": "540p", "fps": 24}}), encoding="utf-8")
    shotlist = load_shotlist(folder / "l.yaml")                      # a local list: accepted

    found = [(shot.id if shot else None, field, path.resolve()) for shot, field, path
             in escaping_paths(shotlist, folder)]

    assert found == [(None, "output.path", tmp_path / "x.mp4"),
                     ("evil", "end.path", tmp_path / "out.png")]


def test_an_s3_uri_with_dot_segments_is_refused_before_any_download(tmp_path, home):
    for uri in ("s3://bucket/../x.yaml", "s3://bucket/a/../../../../tmp/x.yaml", "s3://bucket/./x.yaml"):
        result = run_cli(["plan", uri], timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"{uri}: '.' and '..' are not allowed in the key: write the object's own key"]
    assert not (home / "production").exists()
