"""render_sequence end to end: the real SDK over HTTP to the emulator, real ffmpeg, real Prefect."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import SHOTLISTS, decode_errors, media_facts, sha256, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")

SMALL = [
    {"id": "alpha", "prompt": "A red kite over green hills", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "beta", "prompt": "A blue boat on a calm lake", "resolution": "540p", "trim": [1, 4]},
    {"id": "gamma", "title": "The End: 100% \"done\"", "duration": 2},
]


def _render(path: Path, **kwargs):
    from reelflow.flows.render import render_sequence

    return render_sequence(str(path), **kwargs)


def test_teaser_renders_to_spec(tmp_path, home, luma_env):
    shotlists = tmp_path / "shotlists"
    shutil.copytree(SHOTLISTS, shotlists)
    before = luma_env.created_count()
    report = _render(shotlists / "teaser.yaml")

    assert report.output == shotlists / "renders" / "coffee-teaser.mp4"
    facts = media_facts(report.output)
    assert (facts["vcodec"], facts["acodec"]) == ("h264", "aac")
    assert (facts["width"], facts["height"], facts["fps"]) == (1920, 1080, 24)
    # street 5 + door 4 (trim) + pour 5 + barista 9 + card 3, minus 0.5 + 0.5 + 1 of overlaps
    expected_frames = (5 + 4 + 5 + 9 + 3 - 2) * 24
    assert abs(facts["frames"] - expected_frames) <= 1
    assert len(facts["pts_steps"]) == 1  # one constant pts step: no dropped or doubled frames
    assert abs(facts["audio_s"] - facts["video_s"]) <= 1 / 24
    assert decode_errors(report.output) == ""
    head = report.output.read_bytes()[:1 << 20]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")  # faststart: the index comes first
    assert luma_env.created_count() - before == 4
    assert (report.generated, report.cached, report.shots) == (4, 0, 5)


def test_rerun_unchanged_creates_nothing_and_encodes_nothing(tmp_path, home, luma_env):
    path = write_shotlist(tmp_path, SMALL)
    first = _render(path)
    output_hash = sha256(first.output)
    before = luma_env.created_count()

    second = _render(path)

    assert luma_env.created_count() == before
    assert (second.generated, second.cached, second.cost_usd) == (0, 2, 0.0)
    assert second.encoded_pieces == 0
    assert sha256(second.output) == output_hash
    assert (sha256(second.poster), sha256(second.contact_sheet)) == (
        sha256(first.poster), sha256(first.contact_sheet))
    # what must be made is a task run; what the caches hold is read in the flow body
    assert _task_names(first) >= {"generate-alpha", "generate-beta", "conform-alpha",
                                  "conform-beta", "title-gamma", f"assemble-{path.stem}"}
    assert _task_names(second) == {f"{step}-{path.stem}" for step in ("assemble", "deliver",
                                                                       "lineage")}


def _task_names(report) -> set[str]:
    """The names of the task runs the Prefect API holds for the report's flow run."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    run_id = report.flow_run_url.rstrip("/").rsplit("/", 1)[-1]
    with get_client(sync_client=True) as client:
        def names():
            return {t.name for t in client.read_task_runs(task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[run_id])))}
        seen, deadline = names(), time.monotonic() + 20
        while time.monotonic() < deadline:  # task runs reach the API as events, a moment later
            time.sleep(1.0)
            if (now := names()) == seen and seen:
                return seen
            seen = now
        return seen


def test_title_change_remakes_only_what_shows_it_and_matches_a_clean_edit(tmp_path, home,
                                                                         luma_env):
    """A new title: one card, its seam, one contact-sheet tile; the audio track is copied
    (the card is silence either way). Output, poster and sheet are the bytes a clean edit
    (empty media cache, same stored clips) makes."""
    path = write_shotlist(tmp_path, SMALL)
    _render(path)
    media = home / "cache" / "media"
    tiles, tracks = set(media.glob("tiles/*.png")), set(media.glob("audio/*.m4a"))
    assert len(tiles) == 3 and len(tracks) == 1
    write_shotlist(tmp_path, [*SMALL[:2], dict(SMALL[2], title="Fin")])

    edited = _render(path)

    assert len(set(media.glob("tiles/*.png")) - tiles) == 1      # gamma's cell alone
    assert set(media.glob("audio/*.m4a")) == tracks              # the same track, copied
    assert len(list(media.glob("conform/*.mp4"))) == 2  # a card is drawn conformed: alpha, beta
    assert edited.encoded_pieces <= 1                        # beta -> gamma is a cut
    made = {k: sha256(getattr(edited, k)) for k in ("output", "poster", "contact_sheet", "otio")}
    shutil.rmtree(media)
    clean = _render(path)
    assert {k: sha256(getattr(clean, k)) for k in made} == made


def test_edit_one_prompt_creates_exactly_one(tmp_path, home, luma_env):
    path = write_shotlist(tmp_path, SMALL)
    _render(path)
    edited = [dict(SMALL[0], prompt="A yellow kite over green hills"), *SMALL[1:]]
    write_shotlist(tmp_path, edited)
    before = luma_env.created_count()

    report = _render(path)

    assert luma_env.created_count() - before == 1
    assert (report.generated, report.cached) == (1, 1)
    assert report.cost_usd == 0.40  # the one ray-2 shot made again, 540p 5 s


def test_reorder_and_transition_change_create_nothing(tmp_path, home, luma_env):
    path = write_shotlist(tmp_path, SMALL)
    first = _render(path)
    first_frames = media_facts(first.output)["frames"]
    before = luma_env.created_count()

    write_shotlist(tmp_path, [SMALL[1], SMALL[0], SMALL[2]])
    reordered = _render(path)
    write_shotlist(tmp_path, [dict(SMALL[0], transition={"type": "fade", "duration": 1}), *SMALL[1:]])
    retransitioned = _render(path)

    assert luma_env.created_count() == before
    assert reordered.generated == retransitioned.generated == 0
    assert first_frames == (5 + 3 + 2) * 24 - 12
    # beta (3 s, trimmed) now leads into alpha with a cut: no overlap
    assert reordered.frames == (5 + 3 + 2) * 24 - 12
    assert media_facts(retransitioned.output)["frames"] == (5 + 3 + 2) * 24 - 24


def test_draft_and_final_are_cached_apart(tmp_path, home, luma_env):
    path = write_shotlist(tmp_path, SMALL[:2])
    before = luma_env.created_count()

    draft = _render(path, profile="draft")
    final = _render(path, profile="final")
    draft_again = _render(path, profile="draft")

    assert luma_env.created_count() - before == 4
    assert (draft.generated, final.generated, draft_again.generated) == (2, 2, 0)
    assert draft.output.name == "out.draft.mp4" and final.output.name == "out.mp4"
    models = {r.model for r in draft.shot_results}
    assert models == {"ray-flash-2"}
    assert draft.cost_usd < final.cost_usd


def test_summary_artifact_lists_every_shot(tmp_path, home, luma_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    path = write_shotlist(tmp_path, SMALL, name="summary-check.yaml")
    report = _render(path)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["render-summary-check"])))
    latest = max(artifacts, key=lambda a: a.created)
    rows = [line for line in latest.data.splitlines() if line.startswith("| ") and "---" not in line]
    shots, total = rows[1:-1], rows[-1]
    assert [row.split("|")[2].split("**")[1] for row in shots] == ["alpha", "beta", "gamma"]
    assert "| paid |" in shots[0] and "| title card |" in shots[2]
    assert all("](data:image/jpeg;base64," in row for row in shots)
    assert "“A red kite over green h…”" in shots[0]  # a short excerpt of the prompt
    assert "**total** (3 shots)" in total and f"**${report.cost_usd:.2f}**" in total
    with get_client(sync_client=True) as client:
        ledger = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["cost-summary-check"])))
        link = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["output-summary-check"])))
    table = max(ledger, key=lambda a: a.created).data
    assert "alpha" in table and "gamma" in table
    # no file server runs here: the output's path to copy and how to get a link, no file:// link
    output = max(link, key=lambda a: a.created).data
    assert f"`{report.output}`" in output and "reelflow files" in output and "file://" not in output


def test_deliverables_sit_beside_the_output(tmp_path, home, luma_env):
    import opentimelineio as otio

    path = write_shotlist(tmp_path, SMALL)
    report = _render(path)
    frames = media_facts(report.output)["frames"]

    assert report.poster == tmp_path / "out.poster.jpg" and report.poster.read_bytes()[:2] == b"\xff\xd8"
    assert report.contact_sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timeline = otio.adapters.read_from_file(str(report.otio))
    assert timeline.duration().to_frames() == frames
    clips = list(timeline.tracks[0].find_clips())
    assert [c.metadata["reelflow"]["shot_id"] for c in clips] == ["alpha", "beta", "gamma"]
    assert clips[0].metadata["reelflow"]["generation_id"]
    stamps = {p: p.stat().st_mtime_ns for p in (report.poster, report.contact_sheet, report.otio)}

    again = _render(path)
    assert again.encoded_pieces == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten


def test_fit_contain_letterboxes_a_portrait_shot(tmp_path, home, luma_env):
    import av

    path = write_shotlist(tmp_path, [{"id": "tall", "prompt": "A tall lighthouse, portrait framing",
                                      "resolution": "540p", "aspect_ratio": "9:16"}],
                          output={"path": "wide.mp4", "resolution": "540p", "aspect_ratio": "16:9",
                                  "fit": "contain"})
    report = _render(path)

    with av.open(str(report.output)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape[:2] == (540, 960)
    assert frame[:, :100].max() < 30  # black pillarbox left
    assert frame[:, -100:].max() < 30  # and right
    assert frame[:, 400:560].mean() > 30  # the shot in the middle


def _frame(path: Path, index: int):
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24").astype(int)
    raise AssertionError(f"{path} has no frame {index}")


def test_text_overlay_is_drawn_where_and_when_asked(tmp_path, home, luma_env):
    shot = {"id": "plain", "prompt": "A quiet street at noon", "resolution": "540p"}
    path = write_shotlist(tmp_path, [shot])
    plain_render = _render(path).output
    plain, plain_early = _frame(plain_render, 72), _frame(plain_render, 12)
    write_shotlist(tmp_path, [dict(shot, text={"content": "Lisbon: 6am, 100% \"real\"",
                                               "position": "bottom-left", "start": 2, "end": 4})])
    before = luma_env.created_count()
    titled = _render(path)

    assert luma_env.created_count() == before  # text is an edit, not a new generation
    inside, outside = _frame(titled.output, 72), _frame(titled.output, 12)
    assert abs(inside[-120:, :480] - plain[-120:, :480]).mean() > 5  # drawn at 3 s, bottom-left
    assert abs(inside[:200, -300:] - plain[:200, -300:]).mean() < 2  # not top-right
    assert abs(outside[-120:, :480] - plain_early[-120:, :480]).mean() < 2  # not yet at 0.5 s
    assert media_facts(titled.output)["frames"] == 120


def _integrated_lufs(path: Path) -> float:
    import re
    import subprocess

    from reelflow._binaries import ffmpeg_exe

    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-vn", "-af",
                             "ebur128", "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", result.stderr)[-1])


def test_music_bed_is_mixed_to_the_loudness_target(tmp_path, home, luma_env):
    import subprocess

    from reelflow._binaries import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=4",
                    "-c:a", "aac", str(tmp_path / "bed.m4a")], check=True)
    path = write_shotlist(tmp_path, SMALL[:2], output={
        "path": "out.mp4", "resolution": "540p", "music": "bed.m4a", "music_volume": 0.8,
        "loudness": -16})
    report = _render(path)

    facts = media_facts(report.output)
    assert abs(_integrated_lufs(report.output) - (-16)) <= 1
    assert abs(facts["audio_s"] - facts["video_s"]) <= 1 / 24


@pytest.mark.parametrize("fps,aspect,size", [(25, "9:16", (540, 960)), (30, "1:1", (540, 540))])
def test_output_presets_any_aspect_and_frame_rate(tmp_path, home, luma_env, fps, aspect, size):
    path = write_shotlist(tmp_path, SMALL, output={"path": "out.mp4", "resolution": "540p",
                                                   "aspect_ratio": aspect, "fps": fps})
    report = _render(path)

    facts = media_facts(report.output)
    assert (facts["width"], facts["height"]) == size
    assert facts["fps"] == fps
    assert facts["frames"] == round((5 + 3 + 2 - 0.5) * fps)
    assert len(facts["pts_steps"]) == 1
    assert abs(facts["audio_s"] - facts["video_s"]) <= 1 / fps
    assert decode_errors(report.output) == ""


def _count_plans(monkeypatch) -> list:
    """Every make_plan call of this test, as the store it planned against (None: default)."""
    import sys

    import reelflow.flows.plan
    import reelflow.flows.render  # noqa: F401 - every module that may hold make_plan

    original, calls = reelflow.flows.plan.make_plan, []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("store"))
        return original(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("reelflow") and getattr(module, "make_plan", None) is original:
            monkeypatch.setattr(module, "make_plan", counting)
    return calls


def test_cli_render_plans_once(tmp_path, home, luma_env, monkeypatch, capsys):
    from reelflow.cli import main

    path = write_shotlist(tmp_path, [SMALL[0], SMALL[2]])
    calls = _count_plans(monkeypatch)
    before = luma_env.created_count()

    assert main(["render", str(path), "--json"]) == 0

    assert len(calls) == 1                          # the CLI's plan is the one the flow renders
    assert luma_env.created_count() - before == 1
    assert '"generated": 1' in capsys.readouterr().out


def test_cli_render_with_store_block_plans_once_against_the_block(tmp_path, home, luma_env,
                                                                   monkeypatch, capsys):
    from reelflow.cli import main
    from reelflow.tasks.store_block import ClipStoreBlock

    root = tmp_path / "block-clips"
    ClipStoreBlock(root=str(root)).save("test-plan-once-store", overwrite=True)
    path = write_shotlist(tmp_path, [SMALL[0], SMALL[2]])
    calls = _count_plans(monkeypatch)

    assert main(["render", str(path), "--store-block", "test-plan-once-store", "--json"]) == 0

    assert len(calls) == 1 and calls[0] is not None and calls[0].root == root
    assert len(list(root.rglob("*.mp4"))) == 1      # the clip went where the plan looked
    assert not list((home / "clips").rglob("*.mp4"))
    assert '"generated": 1' in capsys.readouterr().out
