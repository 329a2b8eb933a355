"""What the Prefect UI and automations see: limits created, events emitted, progress tracked."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.helpers import write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")


def _events(client, prefix: str, since) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    page = client.read_events(EventFilter(event=EventNameFilter(prefix=[prefix]),
                                          occurred=EventOccurredFilter(since=since)), limit=50)
    return page.events


def test_render_creates_limits_emits_events_and_tracks_progress(tmp_path, home, luma_env):
    from prefect.client.orchestration import get_client
    from datetime import datetime, timezone

    from reelflow.flows.render import render_sequence
    from reelflow.tasks.luma import LUMA_CONCURRENCY_LIMIT, LUMA_RATE_LIMIT
    from reelflow.tasks.store import ClipStore

    since = datetime.now(timezone.utc)
    with get_client(sync_client=True) as client:
        existing = {l.name: l.active_slots for l in client.read_global_concurrency_limits(limit=200)}
    path = write_shotlist(tmp_path, [
        {"id": "east", "prompt": "Sunrise over the eastern hills", "resolution": "540p"},
        {"id": "west", "prompt": "Sunset over the western sea", "resolution": "540p"}],
        name="observed.yaml")
    report = render_sequence(str(path))

    with get_client(sync_client=True) as client:
        limits = {l.name: l for l in client.read_global_concurrency_limits(limit=200)}
        assert limits[LUMA_CONCURRENCY_LIMIT].limit == 10
        # every slot this run took is given back (slots of runs killed elsewhere in the
        # session may still be leased: they expire on their own)
        assert limits[LUMA_CONCURRENCY_LIMIT].active_slots <= existing.get(LUMA_CONCURRENCY_LIMIT, 0)
        assert limits[LUMA_RATE_LIMIT].slot_decay_per_second > 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            generated = _events(client, "reelflow.shot.generated", since)
            rendered = _events(client, "reelflow.sequence.rendered", since)
            assets = _events(client, "prefect.asset.materialization.succeeded", since)
            if len(generated) >= 2 and rendered and assets:
                break
            time.sleep(0.5)
        assert sorted(e.resource.name for e in generated) == ["east", "west"]
        assert all(e.payload["paid"] and e.payload["cost_usd"] > 0 for e in generated)
        assert rendered[0].payload["output"] == str(report.output)
        assert rendered[0].payload["cost_usd"] == report.cost_usd
        # lineage: the output is a materialized asset with the two clips upstream of it
        store = ClipStore.default()
        output = [e for e in assets if e.resource.id == report.output.resolve().as_uri()]
        assert len(output) == 1 and output[0].payload["cost_usd"] == report.cost_usd
        upstream = {r.id for r in output[0].related if r.role == "asset"}
        assert upstream == {store.uri_for(s.sha256) for s in report.shot_results}
        progress = [a for a in client.read_artifacts() if a.type == "progress"
                    and "observed" in (a.description or "")]
        assert progress and max(float(a.data) for a in progress) == 100.0


# -- the story of a bumpy render, read back through Prefect's API ---------------------------

STORY_SHOTS = [
    {"id": "fog", "prompt": "Fog rolls over a mountain pass", "resolution": "540p"},
    {"id": "hawk", "prompt": "A hawk circles above the valley", "resolution": "540p"},
    {"id": "knife", "prompt": "A knife glints on a kitchen table", "resolution": "540p"},
    {"id": "rain", "prompt": "Rain on a tin roof at night", "resolution": "540p"},
]


@pytest.fixture()
def bumpy(tmp_path, monkeypatch):
    """A fresh emulator that refuses 'knife' and fails half of the other creates once
    (seeded), pointed at by the SDK's env."""
    from reelflow.emulator import Emulator, Faults
    from tests.helpers import TEST_KEY

    emu = Emulator(tmp_path / "account", latency=0.0, seed=14,
                   faults=Faults(moderation_pattern="knife", fail_rate=0.5))
    emu.start()
    monkeypatch.setenv("LUMAAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("LUMAAI_BASE_URL", emu.base_url)
    yield emu
    emu.stop()


@pytest.fixture()
def file_server(home):
    from reelflow.tasks.file_server import FileServer

    server = FileServer(port=0).start()
    yield server
    server.stop()


def _run_of(client, prefix: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=prefix)),
                                 sort=FlowRunSort.START_TIME_DESC, limit=5)
    assert runs, f"no flow run named {prefix}*"
    return runs[0]


def _artifacts(client, run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key or a.type: a for a in found}


def _run_events(client, run_id, since, wanted: int, prefix: str = "reelflow.") -> list:
    """reelflow events of one flow run (related to it), once ``wanted`` have arrived."""
    deadline = time.monotonic() + 20
    while True:
        events = [e for e in _events(client, prefix, since)
                  if any(r.id == f"prefect.flow-run.{run_id}" for r in e.related)]
        if len(events) >= wanted or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def _charged(records) -> float:
    """Credits the account kept: failed generations are refunded (as Luma does)."""
    return sum(r["cost"] for r in records if not r.get("refunded"))


def _reconciles(counted: float, charged: float, calls: int) -> bool:
    """What the run counted is what the account charged, to the rounding of each call's
    price to the cent (the account counts hundredths of a cent)."""
    return abs(counted - charged) <= 0.005 * calls + 1e-9


def test_a_render_failing_on_a_moderated_shot_tells_its_story(tmp_path, home, bumpy):
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client

    from reelflow.errors import ModerationRefused
    from reelflow.flows.render import render_sequence

    since = datetime.now(timezone.utc)
    path = write_shotlist(tmp_path, STORY_SHOTS, name="knife-fails.yaml")
    with pytest.raises(ModerationRefused):
        render_sequence(str(path), on_moderation="fail")
    records = bumpy.account.records()
    charged = _charged(records)

    with get_client(sync_client=True) as client:
        run = _run_of(client, "render-knife-fails-")
        assert run.state.is_failed()
        assert {"outcome:failed", "profile:final", "on-moderation:fail", "refused"} <= set(run.tags)
        artifacts = _artifacts(client, run.id)
        assert {"render-knife-fails", "cost-knife-fails", "output-knife-fails"} <= set(artifacts)
        summary = artifacts["render-knife-fails"].data
        # progress counts clips: 3 of 4 shots have one, the refusal is named (not "100 %")
        assert float(artifacts["progress"].data) == 75.0
        assert "3 of 4 clips" in artifacts["progress"].description
        assert "1 refused" in artifacts["progress"].description
        assert summary.splitlines()[2].startswith("✗ **Failed:** ModerationRefused: shot knife")
        assert "refused → render failed" in summary and "stopped before writing" in summary
        for record in records:  # every billed attempt is named, failed ones too
            assert f"`{record['id'][:8]}`" in summary
        assert f"charged ${charged / 100:.2f}, counted $" in summary and "✓ reconciles" in summary
        ledger = artifacts["cost-knife-fails"].data
        ledger = json.loads(ledger) if isinstance(ledger, str) else ledger
        assert {r["generation"] for r in ledger[:-2]} >= {r["id"] for r in records}
        refunded = {r["generation"] for r in ledger if r["billed"].startswith("refunded")}
        assert refunded == {r["id"] for r in records if r.get("refunded")}
        counted = float(ledger[-2]["cost (USD)"])
        assert ledger[-2]["shot"] == "total" and _reconciles(counted, charged / 100, len(records))
        assert ledger[-1]["shot"] == "account" and ledger[-1]["cost (USD)"] == f"{charged / 100:.2f}"
        events = _run_events(client, run.id, since, wanted=len(records) + 2)
        names = [e.event for e in events]
        assert "reelflow.sequence.failed" in names and "reelflow.shot.refused" in names
        refused = next(e for e in events if e.event == "reelflow.shot.refused")
        assert refused.resource.name == "knife" and refused.payload["paid"] is False
        failed_ids = {r["id"] for r in records if r["failure"]}
        attempt_ids = {e.payload["generation_id"] for e in events
                       if e.event == "reelflow.shot.attempt-failed"}
        assert attempt_ids == failed_ids
        sequence = next(e for e in events if e.event == "reelflow.sequence.failed")
        assert "ModerationRefused" in sequence.payload["error"]
        assert sequence.payload["cost_usd"] == counted


def test_a_render_with_a_placeholder_and_retries_reconciles_and_links_its_output(
        tmp_path, home, bumpy, file_server):
    from datetime import datetime, timezone

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    from reelflow.flows.render import render_sequence

    since = datetime.now(timezone.utc)
    path = write_shotlist(tmp_path, STORY_SHOTS, name="knife-slate.yaml")
    report = render_sequence(str(path), on_moderation="placeholder")

    records = bumpy.account.records()
    failed = [r for r in records if r["failure"] and "moderation" not in r["failure"]["reason"]]
    assert failed, "the seed must fail some creates once"
    charged = _charged(records) / 100
    # what the run counted is what the account was charged: every billed create, the
    # failed attempts and the refused shot's included
    assert _reconciles(report.cost_usd, charged, len(records))
    assert report.balance_before - report.balance_after == pytest.approx(charged * 100, abs=0.5)
    knife = next(s for s in report.shot_results if s.id == "knife")
    assert knife.status == "refused" and knife.cost_usd == 0 and not knife.attempts[0].billed
    assert sum(len(s.attempts) for s in report.shot_results) == len(records)

    with get_client(sync_client=True) as client:
        run = _run_of(client, "render-knife-slate-")
        assert {"outcome:completed", "on-moderation:placeholder", "retried", "refused"} <= set(run.tags)
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[run.id])))
        by_name = {t.name: t for t in tasks}
        assert "placeholder-knife" in by_name
        assert by_name["generate-knife"].state.name == "Refused"
        artifacts = _artifacts(client, run.id)
        summary = artifacts["render-knife-slate"].data
        assert summary.splitlines()[2].startswith("✓ **Completed**")
        assert "refused → `placeholder-knife`" in summary
        clips = re.findall(r"\[clip\]\((http://[^)]+)\)", summary)  # each clip opens over http
        assert len(clips) == 3 and all(c.startswith(file_server.url + "/f/") for c in clips)
        fog = next(s for s in report.shot_results if s.id == "fog")
        assert httpx.get(clips[0]).content == (home / "clips" / fog.sha256[:2] / f"{fog.sha256}.mp4").read_bytes()
        assert f"charged ${charged:.2f}, counted ${report.cost_usd:.2f} ✓ reconciles" in summary
        for record in records:
            assert f"`{record['id'][:8]}`" in summary
        assert "**total** (4 shots)" in summary
        # a link artifact (Prefect stores it as markdown) to a loopback URL, not file://
        link = re.fullmatch(r"\[out\.mp4\]\((.+)\)", artifacts["output-knife-slate"].data)[1]
        assert link.startswith(file_server.url + "/f/") and f"[out.mp4]({link})" in summary
        assert f"`{report.output}`" in summary  # the path stays copyable
        answer = httpx.get(link, headers={"Range": "bytes=0-99"})
        assert answer.status_code == 206 and answer.content == report.output.read_bytes()[:100]
        events = _run_events(client, run.id, since, wanted=len(failed) + 6)
        attempt_ids = {e.payload["generation_id"] for e in events
                       if e.event == "reelflow.shot.attempt-failed"}
        assert {r["id"] for r in failed} <= attempt_ids
        generated = {e.resource.name for e in events if e.event == "reelflow.shot.generated"}
        assert generated == {"fog", "hawk", "rain"}

    since = datetime.now(timezone.utc)
    again = render_sequence(str(path), on_moderation="placeholder")  # all reused: nothing paid
    assert again.cost_usd == 0 and len(bumpy.account.records()) == len(records)
    with get_client(sync_client=True) as client:
        run = _run_of(client, "render-knife-slate-")
        events = _run_events(client, run.id, since, wanted=4)
        assert {e.resource.name for e in events if e.event == "reelflow.shot.cached"} == {
            "fog", "hawk", "rain"}
        assert not [e for e in events if e.event == "reelflow.shot.generated"]


def test_reconciliation_names_what_the_account_did():
    """The balance check, on its own: reconciles, rounding, failed attempts kept, unexplained."""
    from reelflow.flows.report import reconciliation
    from reelflow.flows.story import Attempt, RenderStory, ShotResult

    def story(before, after):
        shots = [ShotResult(id="a", kind="generate", status="paid", length_s=5, cost_usd=0.40,
                            model="ray-2",
                            attempts=[Attempt(generation_id="g1", outcome="failed", billed=False,
                                              cost_usd=0.40),
                                      Attempt(generation_id="g2", outcome="completed", cost_usd=0.40)])]
        return RenderStory(sequence="s", profile="final", shots=shots, balance_before=before,
                           balance_after=after)

    assert reconciliation(story(10000, 9960)).endswith("counted $0.40 ✓ reconciles")
    assert "rounded to the cent" in reconciliation(story(10000, 9960.6))
    assert "kept $0.40 for failed attempts" in reconciliation(story(10000, 9920))
    assert "differs by $1.00" in reconciliation(story(10000, 9860))
    assert "offered no credit balance" in reconciliation(story(None, None))
    assert "10000.00 credits (USD cents, $100.00)" in reconciliation(story(10000, 9960))
    mixed = story(10000, 9960)  # a ray-3.2 shot's spend is on the Agents API's account
    mixed.shots.append(ShotResult(id="b", kind="generate", status="paid", length_s=5, model="ray-3.2",
                                  cost_usd=1.20, attempts=[Attempt(generation_id="g3",
                                                                   outcome="completed", cost_usd=1.20)]))
    assert reconciliation(mixed).endswith(
        "counted $0.40 (and $1.20 on the Agents API, whose balance is not read) ✓ reconciles")


def test_summary_and_cost_ledger_of_a_shot_failed_after_three_tries():
    """A shot whose three attempts all failed: the outcome says so, each attempt has its
    line with its id, refunded; the cost ledger has no bare "-", amounts as 0.00, a total."""
    from reelflow.flows.report import cost_ledger_rows, summary_markdown
    from reelflow.flows.story import Attempt, RenderStory, ShotResult

    tries = [Attempt(generation_id=f"{n}" * 36, outcome="failed", reason="Job failed", billed=False,
                     cost_usd=0.71, dream_s=1.5) for n in (1, 2, 3)]
    shots = [ShotResult(id="storm", kind="generate", status="failed", length_s=5, attempts=tries,
                        failure_reason="Job failed", dream_s=4.5),
             ShotResult(id="calm", kind="generate", status="cached", length_s=5, generation_id="c" * 36),
             ShotResult(id="card", kind="card", status="card", length_s=3)]
    story = RenderStory(sequence="s", profile="final", title="Storm", shots=shots, policy="fail",
                        error="GenerationFailed: shot storm: generation 333 failed: Job failed")
    markdown = summary_markdown(story, {}, {}, "**Output:** none")
    assert markdown.splitlines()[2].startswith("✗ **Failed:** GenerationFailed: shot storm")
    storm = [line for line in markdown.splitlines() if "`1111" in line or "`2222" in line or "`3333" in line]
    assert len(storm) == 3 and all("✗ failed, refunded" in line and "$0.00" in line for line in storm)
    assert "failed after 3 tries: Job failed" in storm[0]
    assert "`cccccccc` reused" in markdown and "**total** (3 shots)" in markdown
    rows = cost_ledger_rows(story)
    assert [r["shot"] for r in rows] == ["storm"] * 3 + ["calm", "card", "total"]
    assert all(r["cost (USD)"] == "0.00" for r in rows)
    assert all(value != "-" for row in rows for value in row.values())
    assert rows[0]["generation"] == "1" * 36 and rows[0]["billed"] == "refunded (0.71)"
