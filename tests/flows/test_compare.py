"""`reelflow compare`: each shot with each model, one labelled grid, sheets per shot, a summary
table, costs that count what was paid, everything cached (choosing a model pays nothing twice)."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest

from tests.helpers import media_facts, run_cli, write_shotlist

SHOTS = [
    {"id": "kite", "prompt": "A kite over a windy beach", "resolution": "540p", "trim": [2, 4]},
    {"id": "note", "title": "Between shots", "duration": 1},
    {"id": "dog", "prompt": "A dog runs along the tide line", "resolution": "540p"},
]


def _frame(path, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame ``index`` of a video as RGB (scaled to ``size``), decoded with PyAV."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                if size:
                    frame = frame.reformat(width=size[0], height=size[1])
                return frame.to_ndarray(format="rgb24").astype(np.int16)
    raise IndexError(index)


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return max(found, key=lambda a: a.created).data


@pytest.mark.usefixtures("prefect_api")
def test_compare_grid_costs_cache_and_render_after(tmp_path, home, luma_env):
    from reelflow.flows.compare import compare_models
    from reelflow.flows.render import render_sequence
    from reelflow.tasks.store import ClipStore

    path = write_shotlist(tmp_path, SHOTS, output={"path": "out/seq.mp4", "resolution": "540p"})
    before = luma_env.created_count()

    report = compare_models(str(path), ["ray-2", "ray-flash-2"])

    assert luma_env.created_count() - before == 4  # 2 shots x 2 models
    facts = media_facts(report.video)
    assert (facts["width"], facts["height"]) == (2 * 480, 270)
    assert facts["frames"] == (2 + 5) * 24  # kite's trimmed 2 s, then dog: cards left out
    # the trimmed shot shows its kept part: the panel's first frame is the clip's frame 48
    kite = next(c for c in report.cells if c.shot == "kite" and c.variant == "ray-2")
    clip = ClipStore.default().path_for(kite.sha256)
    panel = _frame(report.video, 0)[60:, :480]  # below the label
    kept, start = (_frame(clip, i, (480, 270))[60:] for i in (48, 0))
    assert np.abs(panel - kept).mean() < np.abs(panel - start).mean() / 2

    assert {(c.shot, c.variant, c.status) for c in report.cells} == {
        (s, m, "paid") for s in ("kite", "dog") for m in ("ray-2", "ray-flash-2")}
    assert all(c.paid_usd == c.price_usd > 0 for c in report.cells)
    assert all(c.gen_s is not None and c.gen_s >= 0 for c in report.cells)  # from the ledger
    assert report.paid_usd == round(sum(c.price_usd for c in report.cells), 2)
    assert report.cost_usd["ray-2"] > report.cost_usd["ray-flash-2"] > 0
    assert report.flow_run_name.startswith("compare-list-") and "[" not in report.flow_run_name
    assert sorted(report.contact_sheets) == ["dog", "kite"]
    with av.open(str(report.contact_sheets["kite"])) as sheet:  # 3 frames x 2 variants
        stream = sheet.streams.video[0]
        assert stream.width == 3 * 384 and stream.height > 2 * 216
    # nothing hidden left beside the output: the grid and the sheets' folder
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "list.compare", "list.compare.mp4", "list.compare/dog.png", "list.compare/kite.png"]
    markdown = _artifact("compare-list")
    assert "| kite | ray-2 | ray-2 | 540p | 5s | paid |" in markdown
    assert f"${report.paid_usd:.2f}" in markdown
    assert "ray-flash-2" in _artifact("compare-list-cost")

    again = compare_models(str(path), ["ray-2", "ray-flash-2"])
    assert luma_env.created_count() - before == 4
    assert again.paid_usd == 0 and {c.status for c in again.cells} == {"cached"}
    assert [c.gen_s for c in again.cells] == [c.gen_s for c in report.cells]  # still shown
    assert again.cost_usd == report.cost_usd and again.video.read_bytes() == report.video.read_bytes()

    # choosing a model afterwards pays nothing: the render reuses the compared clips
    chosen = write_shotlist(tmp_path, SHOTS, name="chosen.yaml", defaults={"model": "ray-flash-2"},
                            output={"path": "out/chosen.mp4", "resolution": "540p"})
    rendered = render_sequence(str(chosen))
    assert luma_env.created_count() - before == 4
    assert rendered.generated == 0 and rendered.cached == 2


@pytest.mark.usefixtures("prefect_api")
def test_compare_profiles_and_removed_shot_sheets(tmp_path, home, luma_env):
    from reelflow.flows.compare import compare_models

    path = write_shotlist(tmp_path, [SHOTS[0], SHOTS[2]])
    before = luma_env.created_count()
    report = compare_models(str(path), ["ray-2@draft", "final", "ray-flash-2"])
    # ray-2@draft is ray-flash-2 at 540p: the same requests as the ray-flash-2 variant
    assert luma_env.created_count() - before == 4
    draft = [c for c in report.cells if c.variant == "ray-2@draft"]
    assert {c.model for c in draft} == {"ray-flash-2"}
    flash = {c.shot: c for c in report.cells if c.variant == "ray-flash-2"}
    assert all(c.sha256 == flash[c.shot].sha256 for c in draft)
    assert sum(c.status == "paid" for c in report.cells) == 4  # the rest reused in the same run
    assert report.paid_usd == round(sum(c.paid_usd for c in report.cells), 2)
    facts = media_facts(report.video)
    assert (facts["width"], facts["height"]) == (960, 540)  # 3 panels in 2 x 2

    write_shotlist(tmp_path, [SHOTS[2]])  # kite removed from the list: its sheet goes too
    report = compare_models(str(path), ["ray-2"])
    assert sorted(p.name for p in (tmp_path / "list.compare").iterdir()) == ["dog.png"]


def test_variants_are_parsed_and_refused_before_spend():
    from reelflow.errors import ShotListError
    from reelflow.flows._compare_variants import parse_variants

    got = parse_variants(["ray-2", " ray-flash-2@draft", "draft"], "final")
    assert [(v.model, v.profile, v.label) for v in got] == [
        ("ray-2", "final", "ray-2"), ("ray-flash-2", "draft", "ray-flash-2@draft"),
        (None, "draft", "draft")]
    for entries, needle in ((["ray-9"], "'ray-9' is not a model"), (["ray-2@rough"], "profile 'rough'"),
                            (["ray-2", "ray-2@final"], "listed twice"), ([""], "at least one"),
                            ([f"ray-2@{p}" for p in ("draft", "final")] * 5, "listed twice")):
        with pytest.raises(ShotListError) as err:
            parse_variants(entries, "final")
        assert any(needle in line for line in err.value.problems), err.value.problems


def test_cli_compare_bad_variant_is_exit_2_before_prefect(tmp_path, home):
    path = write_shotlist(tmp_path, SHOTS)
    result = run_cli(["compare", str(path), "--models", "ray-2,ray-9"],
                     env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})  # nothing listens there
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("--models: 'ray-9' is not a model (ray-2, "), lines
    assert not (tmp_path / "list.compare.mp4").exists()


def test_summary_is_a_rich_table_on_a_terminal_and_plain_text_in_a_pipe(tmp_path):
    from reelflow.flows._compare_summary import (CompareCell, CompareReport, VariantTotal,
                                                 print_summary)

    cells = [CompareCell(shot="kite", variant=m, model=m, resolution="540p", duration="5s",
                         status=s, price_usd=p, paid_usd=paid, gen_s=g)
             for m, s, p, paid, g in (("ray-2", "paid", 0.40, 0.40, 31.5),
                                      ("ray-flash-2", "cached", 0.14, 0.0, None))]
    totals = [VariantTotal(variant=c.variant, models=[c.model], resolutions=["540p"],
                           price_usd=c.price_usd, paid_usd=c.paid_usd, paid=c.status == "paid",
                           cached=c.status == "cached", refused=0, gen_s=c.gen_s) for c in cells]
    report = CompareReport(video=tmp_path / "x.compare.mp4", contact_sheets={}, cells=cells,
                           variants=totals, paid_usd=0.40, cost_usd={"ray-2": 0.4, "ray-flash-2": 0.14})

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    print_summary(report, pipe)
    print_summary(report, tty)
    plain = pipe.getvalue().splitlines()
    assert plain[0].split() == ["shot", "variant", "model", "res", "dur", "status", "price", "paid", "gen"]
    assert plain[1].split() == ["kite", "ray-2", "ray-2", "540p", "5s", "paid", "$0.40", "$0.40", "31.5s"]
    assert plain[2].split() == ["kite", "ray-flash-2", "ray-flash-2", "540p", "5s", "cached", "$0.14",
                                "$0.00", "—"]
    assert len({len(line) for line in plain[:3]}) <= 2 and "┃" not in pipe.getvalue()
    assert "paid this run: $0.40" in plain
    assert "┃" in tty.getvalue() or "│" in tty.getvalue()  # box drawing: a rich table
    assert "31.5s" in tty.getvalue() and "$0.14" in tty.getvalue()
    assert totals[0].label == "ray-2 · 540p · $0.40 · gen 32s"
    assert json.loads(report.model_dump_json())["paid_usd"] == 0.40


def test_cli_compare_prints_the_summary_table_when_piped(tmp_path, home, luma_env, prefect_api):
    path = write_shotlist(tmp_path, [SHOTS[2]], output={"path": "out.mp4", "resolution": "540p"})
    result = run_cli(["compare", str(path), "--models", "ray-flash-2,ray-2@draft"],
                     env={"PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["shot", "variant", "model", "res", "dur", "status", "price", "paid", "gen"]
    rows = [line.split() for line in lines[1:3]]
    assert [r[:3] for r in rows] == [["dog", "ray-flash-2", "ray-flash-2"],
                                     ["dog", "ray-2@draft", "ray-flash-2"]]
    assert [r[5] for r in rows] == ["paid", "cached"]  # the draft of ray-2 is the same request
    assert lines[-3].startswith("paid this run: $") and lines[-2] == f"grid: {tmp_path / 'list.compare.mp4'}"
    assert "INFO" not in result.stdout and "Traceback" not in result.stderr


def test_cli_compare_needing_a_missing_api_key_is_exit_2_before_prefect(tmp_path, home):
    from tests.helpers import TEST_KEY

    path = write_shotlist(tmp_path, [SHOTS[2]])
    result = run_cli(["compare", str(path), "--models", "ray-2,ray-3.2"],
                     env={"LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": "http://127.0.0.1:9",
                          "PREFECT_API_URL": "http://127.0.0.1:9/api"})  # nothing listens there
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LUMA_AGENTS_API_KEY" in lines[0] and "shot dog" in lines[0], lines
