"""produce(): a folder of shot lists, each rendered only when its shots, edits or inputs changed."""

from __future__ import annotations

import re
import secrets
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import SHOTLISTS, media_facts, write_shotlist

LIST_A = [{"id": "kite", "prompt": "A red kite over green hills", "resolution": "540p"}]
LIST_B = [{"id": "boat", "prompt": "A blue boat on a calm lake", "resolution": "540p"}]


def _write(folder: Path, name: str, shots: list[dict]) -> Path:
    stem = Path(name).stem
    return write_shotlist(folder, shots, name=name,
                          output={"path": f"renders/{stem}.mp4", "resolution": "540p", "fps": 24})


def _produce(folder: Path, **kwargs):
    from reelflow.flows.production import produce

    return produce(str(folder), **kwargs)


def _names(paths) -> list[str]:
    return sorted(Path(p).name for p in paths)


@pytest.mark.usefixtures("prefect_api")
def test_renders_changed_lists_only(tmp_path, home, luma_env):
    folder = tmp_path / "lists"
    folder.mkdir()
    _write(folder, "a.yaml", LIST_A)
    _write(folder, "b.yml", LIST_B)
    (folder / "notes.txt").write_text("not a shot list")
    start = luma_env.created_count()

    first = _produce(folder)
    assert _names(r.shotlist for r in first.rendered) == ["a.yaml", "b.yml"]
    assert (first.skipped, first.failed) == ([], [])
    assert luma_env.created_count() - start == 2
    for name in ("a.mp4", "b.mp4"):                  # one 5 s shot each, 540p at 24 fps
        facts = media_facts(folder / "renders" / name)
        assert (facts["frames"], facts["width"], facts["height"]) == (120, 960, 540)
    assert first.cost_usd == 0.80  # one ray-2 shot per list, 540p 5 s, at $0.40

    second = _produce(folder)
    assert (second.rendered, _names(second.skipped)) == ([], ["a.yaml", "b.yml"])
    assert luma_env.created_count() - start == 2  # nothing created, nothing rendered

    _write(folder, "a.yaml", [dict(LIST_A[0], prompt="A yellow kite over green hills")])
    third = _produce(folder)
    assert _names(r.shotlist for r in third.rendered) == ["a.yaml"]
    assert _names(third.skipped) == ["b.yml"]
    assert luma_env.created_count() - start == 3  # exactly the edited shot

    (folder / "renders" / "b.mp4").write_bytes(b"damaged")  # output changed: rebuilt from cache
    fourth = _produce(folder)
    assert _names(r.shotlist for r in fourth.rendered) == ["b.yml"]
    assert fourth.rendered[0].generated == 0 and fourth.rendered[0].cached == 1
    assert luma_env.created_count() - start == 3
    assert (folder / "renders" / "b.mp4").stat().st_size > 1000


@pytest.mark.usefixtures("prefect_api")
def test_bad_list_is_reported_and_good_list_renders(tmp_path, home, luma_env):
    folder = tmp_path / "lists"
    folder.mkdir()
    _write(folder, "good.yaml", LIST_A)
    (folder / "bad.yaml").write_text("version: 1\nshots:\n  - id: x\n    prompt: hi\n    colour: red\n")
    (folder / "broken.json").write_text("{not json")
    start = luma_env.created_count()

    summary = _produce(folder)

    assert _names(r.shotlist for r in summary.rendered) == ["good.yaml"]
    assert _names(f.shotlist for f in summary.failed) == ["bad.yaml", "broken.json"]
    bad = next(f for f in summary.failed if f.shotlist.endswith("bad.yaml"))
    assert bad.problems and all(line.startswith("bad.yaml: ") for line in bad.problems)
    assert any("colour" in line for line in bad.problems)
    broken = next(f for f in summary.failed if f.shotlist.endswith("broken.json"))
    assert broken.problems[0].startswith("broken.json: ")
    assert luma_env.created_count() - start == 1


def test_missing_folder_is_refused(tmp_path):
    from reelflow.errors import ReelflowError
    from reelflow.flows.production import find_shotlists

    with pytest.raises(ReelflowError, match="does not exist"):
        find_shotlists(tmp_path / "nowhere")


def test_fingerprint_follows_referenced_images_and_profile(tmp_path):
    from reelflow.flows.production import fingerprint
    from reelflow.flows.shotlist import load_shotlist

    shutil.copytree(SHOTLISTS, tmp_path / "lists")
    path = tmp_path / "lists" / "keyframes.yaml"
    before = fingerprint(path, load_shotlist(path), "final")
    assert fingerprint(path, load_shotlist(path), "final") == before
    assert fingerprint(path, load_shotlist(path), "draft") != before

    coast = tmp_path / "lists" / "assets" / "coast.png"  # same path, different picture
    coast.write_bytes((tmp_path / "lists" / "assets" / "bottle.png").read_bytes())
    assert fingerprint(path, load_shotlist(path), "final") != before


def test_render_a_shot_list_from_s3(tmp_path, home, luma_env, s3_server, s3_credentials,
                                    prefect_api):
    """A deployment parameter may be an s3:// URI: the list and its assets are mirrored,
    and the render is published back beside the list."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from reelflow.flows.render import render_sequence

    shutil.copy(SHOTLISTS / "assets" / "bottle.png", tmp_path / "bottle.png")
    path = write_shotlist(tmp_path, [{"id": "s3shot", "prompt": "A bottle on a quay, slow pan",
                                      "resolution": "540p", "start": "bottle.png"}], name="remote.yaml")
    client = s3_server.client()
    for file in (path, tmp_path / "bottle.png"):
        client.upload_file(str(file), s3_server.bucket, f"lists/{file.name}")

    report = render_sequence(f"s3://{s3_server.bucket}/lists/remote.yaml")

    assert report.generated == 1
    assert report.output == home / "production" / "s3" / s3_server.bucket / "lists" / "out.mp4"
    assert media_facts(report.output)["frames"] == 120
    # the whole render is published back beside the list, deliverables included
    assert report.output_uri == f"s3://{s3_server.bucket}/lists/out.mp4"
    for local in (report.output, report.poster, report.contact_sheet, report.otio):
        stored = client.get_object(Bucket=s3_server.bucket, Key=f"lists/{local.name}")
        assert stored["Body"].read() == local.read_bytes()
        # marked as mirrored, so the next mirror of the prefix does not download it back
        assert local.with_name(local.name + ".etag").read_text() == stored["ETag"]
    # the summary's output link is a presigned URL that serves the published video
    with get_client(sync_client=True) as prefect:
        links = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["output-remote"])))
    url = re.search(r"\((http[^)]+)\)", max(links, key=lambda a: a.created).data).group(1)
    assert "X-Amz-Signature=" in url and s3_server.secret_key not in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == report.output.read_bytes()


def test_produce_from_an_s3_prefix_publishes_back(tmp_path, home, luma_env, s3_server,
                                                  s3_credentials, prefect_api):
    """A production folder in S3: renders land beside their lists in the bucket, and the
    next run neither renders nor downloads them back."""
    _write(tmp_path, "a.yaml", LIST_A)
    client = s3_server.client()
    prefix = f"prod-{secrets.token_hex(4)}"
    client.upload_file(str(tmp_path / "a.yaml"), s3_server.bucket, f"{prefix}/a.yaml")
    start = luma_env.created_count()

    first = _produce(f"s3://{s3_server.bucket}/{prefix}")

    assert [r.output_uri for r in first.rendered] == [f"s3://{s3_server.bucket}/{prefix}/renders/a.mp4"]
    local = home / "production" / "s3" / s3_server.bucket / prefix / "renders" / "a.mp4"
    stored = client.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/renders/a.mp4")
    assert stored["Body"].read() == local.read_bytes()
    written = local.stat().st_mtime_ns

    second = _produce(f"s3://{s3_server.bucket}/{prefix}")

    assert (second.rendered, _names(second.skipped)) == ([], ["a.yaml"])
    assert local.stat().st_mtime_ns == written  # the mirror did not fetch the output back
    assert luma_env.created_count() - start == 1


def test_cli_renders_an_s3_list_and_publishes_it(tmp_path, home, luma_env, s3_server,
                                                 s3_credentials, prefect_api):
    import json

    from tests.helpers import run_cli

    client, prefix = s3_server.client(), f"cli-{secrets.token_hex(4)}"
    client.upload_file(str(write_shotlist(tmp_path, LIST_B, name="cli.yaml")), s3_server.bucket,
                       f"{prefix}/cli.yaml")

    result = run_cli(["render", f"s3://{s3_server.bucket}/{prefix}/cli.yaml", "--json"],
                     env={"PREFECT_API_URL": prefect_api})

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["output_uri"] == f"s3://{s3_server.bucket}/{prefix}/out.mp4"
    stored = client.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/out.mp4")["Body"].read()
    assert stored == Path(report["output"]).read_bytes()

    missing = run_cli(["render", f"s3://no-such-bucket-{prefix}/lists/x.yaml"],
                      env={"PREFECT_API_URL": prefect_api})
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    lines = missing.stderr.splitlines()
    assert len(lines) == 1, lines  # one line naming the URI and the reason, nothing paid
    assert lines[0].startswith(f"s3://no-such-bucket-{prefix}/lists/x.yaml: cannot be read from "
                               "S3: ") and "bucket" in lines[0].lower()
