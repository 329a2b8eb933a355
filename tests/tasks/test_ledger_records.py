"""Ledger records read back are checked: an unreadable one is named once and never trusted."""

from __future__ import annotations

import json
import logging

import lumaai
import pytest

from reelflow.emulator import Emulator
from reelflow.errors import GenerationFailed
from reelflow.tasks._dream_machine import DreamMachine
from reelflow.tasks._generate import generate
from reelflow.tasks._ledger import Ledger, LedgerEntry
from reelflow.tasks.models import GenerationRequest
from reelflow.tasks.store import ClipStore
from tests.helpers import TEST_KEY

GOOD = LedgerEntry(key="k" * 64, shot_id="a", generation_id="g-1", attempts=1)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"  \n", "empty"),
    (GOOD.model_dump_json().encode()[:30], "not valid JSON"),
    (b"[1, 2]", "not a ledger record"),
    (json.dumps({**GOOD.model_dump(), "attempts": "many"}).encode(), "attempts"),
    (json.dumps({**GOOD.model_dump(), "sending_since": "yesterday"}).encode(), "sending_since"),
    (GOOD.model_copy(update={"key": "j" * 64}).model_dump_json().encode(), "filed under"),
])
def test_an_unreadable_record_is_named_once_and_knows_nothing(data, reason, home, caplog):
    ledger = Ledger(root=home / "ledger")
    ledger.write(GOOD)
    path = home / "ledger" / "kk" / f"{GOOD.key}.json"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="reelflow.tasks.ledger"):
        first, second = ledger.read(GOOD.key), ledger.read(GOOD.key)
    assert first == second and first.unreadable and reason in first.unreadable
    assert (first.generation_id, first.sha256, first.sending_since) == (None, None, None)
    assert [r.getMessage() for r in caplog.records] == [
        f"Ledger record {path} is unreadable ({first.unreadable.split(' (', 1)[1][:-1]}): "
        "ignored; a render looks its generation up on the account"]
    assert ledger.generation_ids() == set() and not ledger.is_stored(GOOD.key, None)
    ledger.write(LedgerEntry(key=GOOD.key, generation_id="g-2"))  # a write replaces it
    assert ledger.read(GOOD.key).generation_id == "g-2"
    assert "unreadable" not in path.read_text()


def test_a_corrupt_step_record_is_refused_not_paid_again(tmp_path, home):
    """The account cannot say whether an in-place upscale was paid: the shot fails with one
    line naming the record, and nothing is sent."""
    emu = Emulator(tmp_path / "account", latency=0.0)
    emu.start()
    try:
        client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=emu.base_url)
        store, ledger = ClipStore(root=home / "clips"), Ledger(root=home / "ledger")
        request = GenerationRequest(model="ray-flash-2", prompt="Surf on pebbles",
                                    resolution="540p", upscale="1080p")
        generate(request, shot_id="surf", provider=DreamMachine(client), store=store,
                     ledger=ledger)
        before = emu.stats()
        record = home / "ledger" / request.step_key("upscale")[:2] / \
            f"{request.step_key('upscale')}.json"
        record.write_text("{")
        with pytest.raises(GenerationFailed) as failed:
            generate(request, shot_id="surf", provider=DreamMachine(client), store=store,
                     ledger=ledger)
        assert str(record) in str(failed.value) and "\n" not in str(failed.value)
        after = emu.stats()
        assert (after["created"], after["upscaled"]) == (before["created"], before["upscaled"]) \
            == (1, 1)
    finally:
        emu.stop()


def test_resolve_never_adopts_a_generation_another_request_holds(home):
    from reelflow.errors import ShotListError
    from reelflow.flows.resolve import resolve_send

    ledger = Ledger(root=home / "ledger")
    for key, shot in (("a" * 64, "one"), ("b" * 64, "two")):
        ledger.write(LedgerEntry(key=key, shot_id=shot, sending_since="2026-01-01T00:00:00+00:00"))
    ledger.write(LedgerEntry(key="c" * 64, shot_id="three", generation_id="g-recorded"))
    assert ledger.claim("g-claimed", "d" * 64)
    for taken in ("g-recorded", "g-claimed"):
        with pytest.raises(ShotListError, match="already belongs to another request"):
            resolve_send("one", generation_id=taken, ledger=ledger)
    assert ledger.read("a" * 64).generation_id is None
    resolve_send("one", generation_id="g-free", ledger=ledger)
    assert ledger.read("a" * 64).generation_id == "g-free"
    with pytest.raises(ShotListError, match="already belongs"):
        resolve_send("two", generation_id="g-free", ledger=ledger)
