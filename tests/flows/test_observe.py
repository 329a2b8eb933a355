"""What the Prefect UI and automations see: limits created, events emitted, progress tracked."""

from __future__ import annotations

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
