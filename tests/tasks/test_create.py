"""tasks/_create.py on its own: ``create_once`` against the emulator with the real lumaai
SDK (retries off, as the provider sends), one fault at a time, counting the account's
creates. The whole-flow fault matrix is tests/flows/test_faults.py; reconciliation's
field-by-field matching is tests/tasks/test_reconcile.py."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import lumaai
import pytest

from reelflow.emulator.faults import Faults
from reelflow.errors import GenerationFailed, NothingSent
from reelflow.tasks import _create
from reelflow.tasks._create import create_once, recover_interrupted, retry_after
from reelflow.tasks._dream_machine import dream_machine_error, find_matching
from tests.helpers import TEST_KEY


@pytest.fixture()
def account(emulator):
    """The session's emulator with no faults before and after the test."""
    emulator.set_faults(Faults())
    yield emulator
    emulator.set_faults(Faults())


def _payload(resolution: str = "540p") -> dict:
    # a prompt of its own: the session's account holds other tests' generations
    return {"prompt": f"A lighthouse at dusk {uuid.uuid4().hex}", "model": "ray-2",
            "resolution": resolution, "duration": "5s"}


def _create_once(emu, payload: dict, *, fault_once: Faults | None = None
                 ) -> tuple[str, list[float]]:
    """``create_once`` as ``_dream_machine.base_call`` calls it, ``fault_once`` in force for
    the first send only; returns the id and when each send went out."""
    client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=emu.base_url)
    creates = client.with_options(max_retries=0).generations
    sends: list[float] = []
    if fault_once is not None:
        emu.set_faults(fault_once)

    def send():
        sends.append(time.monotonic())
        try:
            return creates.video.create(**payload)
        finally:
            emu.set_faults(Faults())

    made = create_once(send, client, shot_id="s1", classify=dream_machine_error,
                       reconcile=lambda since: find_matching(client, payload, since))
    return made, sends


def _injected(emu, name: str) -> int:
    return emu.stats()["injected"].get(name, 0)


def test_an_answered_create_is_sent_once(account):
    before = account.created_count()
    made, sends = _create_once(account, _payload())
    assert account.created_count() - before == 1 and len(sends) == 1
    assert made == lumaai.LumaAI(auth_token=TEST_KEY, base_url=account.base_url) \
        .generations.list(limit=1).generations[0].id


def test_a_lost_answer_adopts_the_generation_it_made(account):
    before, dropped = account.created_count(), _injected(account, "drop_after_create")
    payload = _payload()
    made, sends = _create_once(account, payload, fault_once=Faults(drop_after_create=1.0))
    assert _injected(account, "drop_after_create") - dropped == 1
    assert account.created_count() - before == 1 and len(sends) == 1  # adopted, not resent
    client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=account.base_url)
    assert client.generations.get(made).request.prompt == payload["prompt"]


def test_a_dropped_connection_that_made_nothing_is_sent_again(account):
    before, dropped = account.created_count(), _injected(account, "drop_before_create")
    _made, sends = _create_once(account, _payload(), fault_once=Faults(drop_before_create=1.0))
    assert _injected(account, "drop_before_create") - dropped == 1
    assert account.created_count() - before == 1 and len(sends) == 2


@pytest.mark.parametrize(("fault", "counter"), [
    (Faults(rate_429=1.0, retry_after=0.2, status_routes=["create"]), "rate_429"),
    (Faults(rate_500=1.0, status_routes=["create"]), "rate_500"),
])
def test_an_answer_that_made_nothing_is_sent_again(account, fault, counter):
    before, injected = account.created_count(), _injected(account, counter)
    _made, sends = _create_once(account, _payload(), fault_once=fault)
    assert _injected(account, counter) - injected == 1
    assert account.created_count() - before == 1 and len(sends) == 2
    if counter == "rate_429":  # waited as told (retry-after: 0.2 s) before sending again
        assert sends[1] - sends[0] >= 0.2


def test_a_refused_request_raises_nothing_sent_with_the_apis_reason(account):
    before = account.created_count()
    with pytest.raises(NothingSent, match=r"shot s1: the API refused the request \(400\): ") as info:
        _create_once(account, _payload(resolution="999p"))
    assert info.value.failure_reason.startswith("400: ") and "999p" in info.value.failure_reason
    assert account.created_count() == before


def test_only_rate_limits_is_nothing_sent_after_the_last_attempt(account):
    client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=account.base_url)
    creates = client.with_options(max_retries=0).generations
    account.set_faults(Faults(rate_429=1.0, retry_after=0.1, status_routes=["create"]))
    before, sends = account.created_count(), []

    def send():
        sends.append(1)
        return creates.video.create(**_payload())

    with pytest.raises(NothingSent, match=f"failed {_create.MAX_CREATE_ATTEMPTS} times"):
        create_once(send, client, shot_id="s1", classify=dream_machine_error,
                    reconcile=lambda since: pytest.fail("a 429 made nothing: no look-up"))
    assert len(sends) == _create.MAX_CREATE_ATTEMPTS and account.created_count() == before


def test_unknown_outcomes_to_the_last_attempt_are_generation_failed(account, monkeypatch):
    monkeypatch.setattr(_create, "MAX_CREATE_ATTEMPTS", 2)  # backoff 0.5 s + 1 s
    client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=account.base_url)
    creates = client.with_options(max_retries=0).generations
    account.set_faults(Faults(drop_before_create=1.0))
    payload, looked = _payload(), []

    def reconcile(since):
        looked.append(since)
        return find_matching(client, payload, since)

    with pytest.raises(GenerationFailed, match="failed 2 times") as info:
        create_once(lambda: creates.video.create(**payload), client, shot_id="s1",
                    classify=dream_machine_error, reconcile=reconcile)
    assert type(info.value) is GenerationFailed  # maybe sent: never NothingSent
    assert len(looked) == 2


def test_recover_interrupted_finds_what_a_dead_run_sent(account):
    client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=account.base_url)
    payload, sent_at = _payload(), datetime.now(timezone.utc)
    made = client.generations.video.create(**payload).id
    found = recover_interrupted(lambda since: find_matching(client, payload, since), sent_at, "s1",
                                classify=dream_machine_error)
    assert found == made
    other = _payload()
    assert recover_interrupted(lambda since: find_matching(client, other, since), sent_at, "s1",
                               classify=dream_machine_error) is None


@pytest.mark.parametrize(("headers", "attempt", "wait"), [
    ({"retry-after-ms": "250"}, 0, 0.25),
    ({"retry-after": "3"}, 0, 3.0),
    ({"retry-after": "600"}, 0, 60.0),                  # capped
    ({"retry-after": "0"}, 0, 0.1),                     # at least 0.1 s
    ({"retry-after": "soon", "x-ratelimit-reset": "5"}, 0, 5.0),  # seconds from now
    ({}, 3, 4.0), ({}, 9, 30.0),                        # no header: backoff, capped
])
def test_retry_after_reads_the_headers_in_order(headers, attempt, wait):
    assert retry_after(headers, attempt) == pytest.approx(wait)


def test_retry_after_reads_an_epoch_reset():
    assert retry_after({"x-ratelimit-reset": str(time.time() + 7)}, 0) == pytest.approx(7, abs=0.5)
