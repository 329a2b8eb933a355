"""ray-3.2 with hdr + exr: the Agents API's EXR export is downloaded, verified, stored with
the clip's ledger entry and delivered beside the render; priced by Luma's table before spend."""

from __future__ import annotations

import json
import zipfile

import av
import pytest

from tests.helpers import run_cli, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")

EXR_MAGIC = b"\x76\x2f\x31\x01"
SHOTS = [
    {"id": "plate", "model": "ray-3.2", "prompt": "Sunlight through a stained-glass window",
     "resolution": "720p", "hdr": True, "exr": True},
    {"id": "wide", "model": "ray-3.2", "prompt": "A cathedral nave, wide", "resolution": "360p"},
]


def _outputs(emu) -> int:
    return emu.stats()["requests"].get("agents_output", 0)


def test_exr_export_is_stored_delivered_once_and_a_rerun_pays_nothing(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks.store import ClipStore

    path = write_shotlist(tmp_path, SHOTS)
    created = luma_env.agents_created_count()

    plan = run_cli(["plan", str(path), "--json"])
    assert plan.returncode == 0, plan.stderr
    costs = {s["id"]: s["cost_usd"] for s in json.loads(plan.stdout)["shots"]}
    assert costs == {"plate": 0.90, "wide": 0.06}  # Luma: 720p HDR + EXR 5 s $0.90, 360p $0.06
    refused = run_cli(["render", str(path), "--budget", "0.95"])
    assert refused.returncode == 2 and "budget" in refused.stderr.lower()
    assert luma_env.agents_created_count() == created  # refused before any spend

    report = render_sequence(str(path))

    assert luma_env.agents_created_count() - created == 2
    (exr,) = report.exr
    assert exr == report.output.with_suffix("").with_name(report.output.stem + ".exr") / \
        "plate.exr.zip"
    with zipfile.ZipFile(exr) as archive:
        names = sorted(archive.namelist())
        assert len(names) == 5 * 24  # one EXR per frame of the 5 s clip
        assert all(archive.read(n)[:4] == EXR_MAGIC for n in names)
        (tmp_path / "f.exr").write_bytes(archive.read(names[0]))
    with av.open(str(tmp_path / "f.exr")) as image:  # ffmpeg reads it: OpenEXR, the clip's size
        stream = image.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("exr", 1280, 720)
    entry = next(e for e in Ledger.default().entries() if e.shot_id == "plate")
    store = ClipStore.default()
    assert entry.exr_sha256 and store.has(entry.exr_sha256, ".zip")
    assert store.path_for(entry.exr_sha256, ".zip").read_bytes() == exr.read_bytes()
    record = next(r for r in luma_env.agents.records() if r["id"] == entry.generation_id)
    assert record["request"]["video"] == {**record["request"]["video"], "hdr": True,
                                          "exr_export": True}
    assert report.cost_usd == 0.96
    delivered, downloads = exr.stat().st_mtime_ns, _outputs(luma_env)

    again = render_sequence(str(path))

    assert (again.generated, again.cost_usd) == (0, 0)
    assert luma_env.agents_created_count() - created == 2
    assert _outputs(luma_env) == downloads  # nothing downloaded again
    assert again.exr == [exr] and exr.stat().st_mtime_ns == delivered

    # The stored export lost: fetched again from the same generation, nothing paid.
    store.path_for(entry.exr_sha256, ".zip").unlink()
    third = render_sequence(str(path))
    assert (third.generated, luma_env.agents_created_count() - created) == (0, 2)
    assert _outputs(luma_env) == downloads + 1 and third.exr == [exr]
