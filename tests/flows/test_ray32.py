"""ray-3.2 beside ray-2: one list, two APIs, two real SDKs, one seam; paid once on each API."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import media_facts, write_png, write_shotlist


def _files(emu) -> int:
    """Files the emulated Agents API account holds (uploads)."""
    return sum(emu.agents.file_counts().values())


def test_mixed_list_renders_through_both_sdks_and_rerun_pays_nothing(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence

    shots = [
        {"id": "old", "prompt": "Fog rolls over a mountain pass", "resolution": "540p"},
        {"id": "new", "model": "ray-3.2", "prompt": "A hawk circles above the valley",
         "resolution": "360p"},
        {"id": "long", "model": "ray-3.2", "prompt": "Rain on a tin roof at night",
         "resolution": "360p", "duration": "10s"},
        {"id": "flash", "model": "ray-flash-2", "prompt": "A lantern on dark water",
         "resolution": "540p"},
    ]
    path = write_shotlist(tmp_path, shots)
    dream, agents = luma_env.created_count(), luma_env.agents_created_count()

    report = render_sequence(str(path))

    assert luma_env.created_count() - dream == 2
    assert luma_env.agents_created_count() - agents == 2
    assert report.generated == 4
    facts = media_facts(report.output)
    assert facts["frames"] == (5 + 5 + 10 + 5) * 24
    by_id = {r.id: r for r in report.shot_results}
    assert (by_id["new"].model, by_id["new"].cost_usd) == ("ray-3.2", 0.06)
    assert by_id["long"].cost_usd == 0.18  # Luma: 360p 10s is $0.18 (3x the 5s $0.06)
    assert round(report.cost_usd, 2) == round(sum(r.cost_usd for r in report.shot_results), 2)
    ledger = [json.loads(p.read_text()) for p in (home / "ledger").glob("*/*.json")]
    assert sorted(e["cost_usd"] for e in ledger) == sorted(r.cost_usd for r in report.shot_results)

    again = render_sequence(str(path))

    assert luma_env.created_count() - dream == 2
    assert luma_env.agents_created_count() - agents == 2
    assert (again.generated, again.cost_usd) == (0, 0)
    assert media_facts(again.output)["frames"] == facts["frames"]


def test_one_local_image_is_uploaded_once_for_two_shots_and_two_runs(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence

    write_png(tmp_path / "still.png", 640, 360, colour=200)
    shots = [{"id": f"s{n}", "model": "ray-3.2", "prompt": f"Take {n}: the still comes alive",
              "resolution": "360p", "start": "still.png"} for n in (1, 2)]
    path = write_shotlist(tmp_path, shots)
    files, agents = _files(luma_env), luma_env.agents_created_count()

    report = render_sequence(str(path))

    assert _files(luma_env) - files == 1
    assert luma_env.agents_created_count() - agents == 2 and report.generated == 2
    # a new take of one shot: paid, but the image's upload is reused (checked with files.get)
    shots[0]["take"] = 2
    render_sequence(str(write_shotlist(tmp_path, shots)))
    assert _files(luma_env) - files == 1
    assert luma_env.agents_created_count() - agents == 3


def test_a_deleted_upload_is_uploaded_again(tmp_path, home, luma_env):
    import luma_agents

    from reelflow.flows.render import render_sequence

    write_png(tmp_path / "still.png", 640, 360, colour=90)
    shot = {"id": "a", "model": "ray-3.2", "prompt": "A still, then motion", "resolution": "360p",
            "start": "still.png"}
    render_sequence(str(write_shotlist(tmp_path, [shot])))
    record = next((home / "ledger" / "files").glob("*.json"))
    file_id = json.loads(record.read_text())["file_id"]
    luma_agents.Luma(auth_token="x", base_url=luma_env.agents_base_url).files.delete(file_id)

    render_sequence(str(write_shotlist(tmp_path, [dict(shot, take=2)])))

    assert json.loads(record.read_text())["file_id"] != file_id


def test_draft_keeps_ray32_on_its_360p_tier(tmp_path, home, luma_env):
    from reelflow.flows.plan import make_plan
    from reelflow.flows.shotlist import load_shotlist

    path = write_shotlist(tmp_path, [
        {"id": "a", "prompt": "A red kite over hills", "resolution": "1080p"},
        {"id": "b", "model": "ray-3.2", "prompt": "A blue boat at dawn", "resolution": "1080p",
         "hdr": True, "exr": True}])
    final = make_plan(load_shotlist(path), "final")
    draft = make_plan(load_shotlist(path), "draft")
    assert [(s.model, s.resolution) for s in draft.shots] == [("ray-flash-2", "540p"),
                                                             ("ray-3.2", "360p")]
    assert not draft.shots[1].request.hdr and draft.shots[1].cost_usd == 0.06
    assert final.shots[1].cost_usd == 3.60  # 1080p HDR + EXR, one 5s block
    assert draft.shots[1].request.cache_key() != final.shots[1].request.cache_key()


@pytest.mark.parametrize("env,missing", [
    ({"LUMAAI_API_KEY": "k"}, "LUMA_AGENTS_API_KEY"),
    ({"LUMA_AGENTS_API_KEY": "k"}, "LUMAAI_API_KEY"),
])
def test_a_list_needing_an_api_without_its_key_is_refused_before_spend(env, missing, tmp_path,
                                                                          home, monkeypatch):
    from reelflow.errors import CredentialsMissing
    from reelflow.flows.endpoint import check_credentials
    from reelflow.flows.plan import make_plan
    from reelflow.flows.shotlist import load_shotlist

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = write_shotlist(tmp_path, [
        {"id": "a", "prompt": "A red kite over hills", "resolution": "540p"},
        {"id": "b", "model": "ray-3.2", "prompt": "A blue boat at dawn", "resolution": "360p"}])
    with pytest.raises(CredentialsMissing, match=missing):
        check_credentials(make_plan(load_shotlist(path), "final"))


def test_cli_refuses_a_list_whose_api_key_is_missing_before_prefect(tmp_path, home):
    from tests.helpers import run_cli

    path = write_shotlist(tmp_path, [
        {"id": "b", "model": "ray-3.2", "prompt": "A blue boat at dawn", "resolution": "360p"}])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMAAI_", "LUMA_"))}
    result = run_cli(["render", str(path)], env={**env, "LUMAAI_API_KEY": "k"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "reelflow: list.yaml: shot b needs the Luma ray-3.2 and uni-1 API, but LUMA_AGENTS_API_KEY is not "
        "set; set it (nothing was submitted)"]
    assert not (tmp_path / "out.mp4").exists()
