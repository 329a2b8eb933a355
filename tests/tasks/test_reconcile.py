"""A lost create answer adopts only the generation made from exactly that request.

Two requests differing in one field each lose their create answers; each must end up
with the generation made from its own payload (checked against the account's records),
and the account must hold one generation per request. Takes (identical payloads) are
told apart by claims in the ledger, also between two machines sharing an S3 ledger.
No clip is rendered here: reconciliation needs ids, not videos.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lumaai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelflow._binaries import ffmpeg_exe
from reelflow.emulator import Emulator, Faults
from reelflow.tasks._asset_server import asset_scope
from reelflow.tasks._dream_machine import base_call
from reelflow.tasks._dream_machine import request_form
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest, Keyframe
from reelflow.tasks.store import ClipStore, sha256_file
from tests.helpers import TEST_KEY

BASE = {"model": "ray-2", "prompt": "A lighthouse on a cliff at dusk", "resolution": "540p"}


def _image(directory: Path, name: str, colour: tuple[int, int, int]) -> Keyframe:
    """A 64x36 PNG of one colour, made with ffmpeg."""
    path = directory / f"{name}.png"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0x%02x%02x%02x:s=64x36" % colour, "-frames:v", "1", str(path)],
                   check=True, timeout=60)
    return Keyframe(kind="image", path=path, sha256=sha256_file(path))


def _pairs(directory: Path) -> dict[str, tuple[dict, dict]]:
    """For each request field: two requests' fields, differing only in it."""
    red, blue = _image(directory, "red", (200, 0, 0)), _image(directory, "blue", (0, 0, 200))
    return {
        "model": ({}, {"model": "ray-flash-2"}),
        "prompt": ({}, {"prompt": BASE["prompt"] + ", in fog"}),
        "aspect": ({}, {"aspect_ratio": "9:16"}),
        "resolution": ({}, {"resolution": "720p"}),
        "duration": ({}, {"duration": "9s"}),
        "loop": ({}, {"loop": True}),
        "concepts": ({}, {"concepts": ("orbit_left",)}),
        "concept": ({"concepts": ("orbit_left",)}, {"concepts": ("orbit_right",)}),
        "more concepts": ({"concepts": ("orbit_left",)}, {"concepts": ("orbit_left", "zoom_in")}),
        "start keyframe": ({}, {"frame0": red}),
        "end keyframe": ({}, {"frame1": red}),
        "start image": ({"frame0": red}, {"frame0": blue}),
        "start or end": ({"frame0": red}, {"frame1": red}),
    }


FIELDS = ["model", "prompt", "aspect", "resolution", "duration", "loop",
          "concepts", "concept", "more concepts", "start keyframe", "end keyframe", "start image",
          "start or end"]


@pytest.fixture()
def account(tmp_path):
    emu = Emulator(tmp_path / "account", latency=0.0)
    emu.start()
    yield emu
    emu.stop()


def _client(emu: Emulator) -> lumaai.LumaAI:
    return lumaai.LumaAI(auth_token=TEST_KEY, base_url=emu.base_url)


def _url_for(store: ClipStore):
    """Local keyframes as a render serves them: in an asset scope of its own (a new
    unguessable path per call, as for each run)."""
    scope = asset_scope()
    return lambda path: store.image_url_for(path, loopback_ok=True, assets=scope)


def _payload(request: GenerationRequest, store: ClipStore) -> dict:
    urls = _url_for(store)
    return request.api_kwargs({name: urls(frame.path) for name in ("frame0", "frame1")
                               if (frame := getattr(request, name)) is not None})


def _own(emu: Emulator, generation_id: str, request: GenerationRequest, store: ClipStore) -> bool:
    """The account made ``generation_id`` from exactly ``request``'s payload."""
    record = next(r for r in emu.account.records() if r["id"] == generation_id)
    return request_form(record["request"]) == request_form(_payload(request, store))


@pytest.mark.parametrize("field", FIELDS)
def test_lost_answers_of_near_identical_requests_adopt_their_own(field, tmp_path, home, account):
    """Both creates are recorded by the account, both answers lost (the run died): the
    next run (its keyframes under another asset path) finds each request's own generation,
    whichever of the two is newer."""
    first, second = (GenerationRequest(**{**BASE, **fields}) for fields in _pairs(tmp_path)[field])
    store = ClipStore(root=home / "clips")
    client, ledger = _client(account), Ledger(root=home / "ledger")
    calls = [base_call(r, client, ledger, r.cache_key()[:8], _url_for(store), None)
             for r in (first, second)]
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    made = {}
    for request in (first, second):  # the second is the newest
        made[request.cache_key()] = client.generations.video.create(**_payload(request, store)).id
    found = [call.recover(since, None) for call in calls]
    assert found == [made[first.cache_key()], made[second.cache_key()]]
    assert _own(account, found[0], first, store) and _own(account, found[1], second, store)
    assert account.created_count() == 2


@pytest.mark.parametrize("field", FIELDS)
def test_every_create_answer_dropped_one_create_per_request(field, tmp_path, home, account):
    """Both creates go out together and every answer is dropped after the account
    recorded the generation: two creates, two generations, each from its own request."""
    account.set_faults(Faults(drop_after_create=1.0))
    requests = [GenerationRequest(**{**BASE, **fields}) for fields in _pairs(tmp_path)[field]]
    store = ClipStore(root=home / "clips")
    client, ledger = _client(account), Ledger(root=home / "ledger")
    together = threading.Barrier(2)
    found: dict[int, str] = {}

    def send(index: int) -> None:
        call = base_call(requests[index], client, ledger, f"s{index}", _url_for(store),
                         lambda: together.wait(timeout=30))
        found[index] = call.send(None)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stats = account.stats()
    assert stats["injected"]["drop_after_create"] == 2 and stats["created"] == 2
    assert found[0] != found[1]
    assert _own(account, found[0], requests[0], store)
    assert _own(account, found[1], requests[1], store)


_keyframes = st.sampled_from([None, "red", "blue"])


def _stored(colour: str) -> str:
    """A stored image's URL name: its content hash and extension."""
    return hashlib.sha256(colour.encode()).hexdigest() + ".png"


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({
    "model": st.sampled_from(["ray-2", "ray-flash-2"]),
    "aspect_ratio": st.sampled_from(["16:9", "1:1"]), "resolution": st.sampled_from(["540p", "720p"]),
    "duration": st.sampled_from(["5s", "9s"]), "loop": st.booleans(),
    "concepts": st.lists(st.sampled_from(["orbit_left", "zoom_in"]), max_size=2, unique=True),
    "frame0": _keyframes, "frame1": _keyframes}), st.data())
def test_a_generation_matches_exactly_the_request_that_made_it(fields, data):
    """request_form(echo of a) == request_form(b) exactly when a and b send the same API
    request (a stored keyframe image by its name: ports, asset paths and signatures change
    between runs)."""
    def payload(values: dict, port: int) -> dict:
        request = GenerationRequest(prompt="A red kite", **{
            k: v for k, v in values.items() if k not in ("frame0", "frame1")},
            **{k: Keyframe(kind="image", path=Path(f"/{v}.png"), sha256=v)
               for k in ("frame0", "frame1") if (v := values[k])})
        return request.api_kwargs({k: f"http://127.0.0.1:{port}/r/t{port}/{_stored(v)}?sig={port}"
                                   for k in ("frame0", "frame1") if (v := values[k])})

    other = dict(fields, **data.draw(st.fixed_dictionaries({}, optional={
        "loop": st.booleans(), "frame0": _keyframes, "frame1": _keyframes,
        "concepts": st.lists(st.sampled_from(["orbit_left", "zoom_in"]), max_size=2, unique=True),
        "duration": st.sampled_from(["5s", "9s"])})))
    echoed = {**payload(fields, 1111), "generation_type": "video"}  # as the account echoes it
    assert (request_form(echoed) == request_form(payload(other, 2222))) == (fields == other)


def test_absent_fields_equal_their_defaults():
    sent = {"model": "ray-2", "prompt": "A red kite", "aspect_ratio": "16:9", "resolution": "720p",
            "duration": "5s"}
    echoed = {"model": "ray-2", "prompt": "A red kite", "loop": False, "concepts": [],
              "keyframes": {"frame0": None}, "callback_url": None, "generation_type": "video"}
    assert request_form(echoed) == request_form(sent)
    assert request_form({**echoed, "loop": True}) != request_form(sent)
    assert request_form({**echoed, "callback_url": "https://x"}) != request_form(sent)
    assert request_form({**echoed, "extra": 1}) != request_form(sent)  # unknown: never ours


@pytest.mark.parametrize("where", ["local", "s3"])
def test_claims_give_a_generation_to_one_key(where, tmp_path, home, request):
    if where == "s3":
        request.getfixturevalue("s3_credentials")
        server = request.getfixturevalue("s3_server")
        store = ClipStore.from_url(f"s3://{server.bucket}/claims-{secrets.token_hex(4)}")
        one, two = (Ledger(root=tmp_path / n / "ledger", shared=store) for n in "ab")
    else:
        one = two = Ledger(root=home / "ledger")
    assert one.claim("gen-1", "key-a") and one.claim("gen-1", "key-a")
    assert not two.claim("gen-1", "key-b")
    assert two.claim("gen-2", "key-b") and not one.claim("gen-2", "key-a")
    assert not one.claim("../escape", "key-a")  # never a path outside the claims
    assert one.generation_ids() == set()  # claims are not records


def test_takes_on_two_machines_sharing_an_s3_ledger_never_share_a_generation(
        tmp_path, s3_credentials, account):
    """take 1 on machine a, take 2 on machine b (identical payloads), both creates made
    and both answers lost, both recovering at once: each adopts a different generation.
    Three rounds, each on a fresh prefix."""
    client = _client(account)
    takes = [GenerationRequest(**BASE, take=n) for n in (1, 2)]
    for round_no in range(3):
        store = ClipStore.from_url(f"s3://{s3_credentials.bucket}/takes-{secrets.token_hex(4)}")
        machines = [Ledger(root=tmp_path / f"r{round_no}{name}" / "ledger", shared=store)
                    for name in "ab"]
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        made = {client.generations.video.create(**takes[0].api_kwargs()).id for _ in takes}
        together = threading.Barrier(2)
        found: dict[int, str | None] = {}

        def recover(index: int) -> None:
            call = base_call(takes[index], client, machines[index], f"take{index + 1}", None, None)
            together.wait(timeout=30)
            found[index] = call.recover(since, None)

        threads = [threading.Thread(target=recover, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert set(found.values()) == made, f"round {round_no}: {found}"
