"""tasks/_generate.py on its own: ``generate`` with the Dream Machine provider (the real
lumaai SDK), a local ClipStore and its Ledger, against an emulator account of the test's
own, counting that account's creates. Whole renders are tests/flows/test_render.py and the
fault matrix tests/flows/test_faults.py; ``create_once`` is tests/tasks/test_create.py."""

from __future__ import annotations

import lumaai
import pytest

from reelflow.emulator import Emulator
from reelflow.emulator.faults import Faults
from reelflow.errors import GenerationFailed, ModerationRefused
from reelflow.tasks._dream_machine import DreamMachine
from reelflow.tasks._generate import generate
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest
from reelflow.tasks.store import ClipStore
from tests.helpers import TEST_KEY

REQUEST = GenerationRequest(model="ray-2", prompt="A lighthouse at dusk, beams sweeping",
                            resolution="540p")


@pytest.fixture()
def account(tmp_path):
    with Emulator(tmp_path / "account", latency=0.0) as emu:
        yield emu


def _generate(emu: Emulator, request: GenerationRequest = REQUEST, **kwargs):
    store = ClipStore.default()
    provider = DreamMachine(lumaai.LumaAI(auth_token=TEST_KEY, base_url=emu.base_url))
    return generate(request, shot_id="s1", provider=provider, store=store,
                    ledger=Ledger.for_store(store), **kwargs)


def _entry(request: GenerationRequest = REQUEST):
    return Ledger.for_store(ClipStore.default()).read(request.cache_key())


def test_a_request_is_paid_once_and_then_reused(home, account):
    first = _generate(account)
    assert first.paid and first.cost_usd == 0.40 and account.created_count() == 1
    assert (first.width, first.height, first.frames) == (960, 540, 120)
    entry = _entry()
    assert (entry.generation_id, entry.sha256) == (first.generation_id, first.sha256)
    assert [a.generation_id for a in entry.history] == [first.generation_id]

    again = _generate(account)
    assert not again.paid and again.cost_usd == 0 and account.created_count() == 1
    assert (again.sha256, again.generation_id) == (first.sha256, first.generation_id)


def test_another_take_is_paid_anew(home, account):
    first = _generate(account)
    second = _generate(account, REQUEST.model_copy(update={"take": 2}))
    assert second.paid and account.created_count() == 2
    assert second.generation_id != first.generation_id  # (the emulator's clip is the prompt's)
    assert _entry(REQUEST.model_copy(update={"take": 2})).generation_id == second.generation_id


def test_a_lost_stored_clip_is_fetched_again_from_its_generation(home, account):
    first = _generate(account)
    first.path.unlink()
    again = _generate(account)
    assert not again.paid and account.created_count() == 1    # the recorded id, not a create
    assert again.sha256 == first.sha256 and again.path.is_file()


def test_a_failed_generation_is_resubmitted_within_the_bound(home, account):
    account.set_faults(Faults(fail_first=1))
    clip = _generate(account)
    assert clip.paid and account.created_count() == 2
    history = _entry().history
    assert len(history) == 2 and history[-1].generation_id == clip.generation_id
    assert history[0].generation_id != clip.generation_id


def test_failures_past_the_bound_stop_the_shot(home, account):
    account.set_faults(Faults(fail_first=3))
    with pytest.raises(GenerationFailed, match="Job failed") as info:
        _generate(account, resubmits=1)
    assert not isinstance(info.value, ModerationRefused)
    assert account.created_count() == 2                       # the first send + 1 resubmit


def test_moderation_is_never_resubmitted(home, account):
    account.set_faults(Faults(moderation_pattern="forbidden"))
    request = REQUEST.model_copy(update={"prompt": "A forbidden door"})
    for _run in range(2):                                     # a rerun: the same answer, unpaid
        with pytest.raises(ModerationRefused, match="moderation failed") as info:
            _generate(account, request)
    assert account.created_count() == 1
    [attempt] = _entry(request).history
    assert (attempt.generation_id, attempt.state) == (info.value.generation_id, "failed")

