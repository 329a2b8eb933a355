"""The fault matrix: a hostile emulator, and still every generation is paid once.

Each row renders the same 3-shot list against a fresh emulator with one fault injected
(seeded, so the same creates are hit every run), counts the generations the account
created, and checks the output. The table is printed at the end (`pytest -s` shows it).
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import httpx
import pytest

from reelflow._binaries import ffmpeg_exe
from reelflow.emulator import Emulator, Faults
from reelflow.emulator.limits import WINDOW
from reelflow.errors import AnswerLost, GenerationFailed, ModerationRefused
from tests.helpers import TEST_KEY, damage, media_facts, run_cli, sha256, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")

SHOTS = [
    {"id": "one", "prompt": "Fog rolls over a mountain pass", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "two", "prompt": "A hawk circles above the valley", "resolution": "540p"},
    {"id": "three", "prompt": "Rain on a tin roof at night", "resolution": "540p"},
]
FRAMES = 15 * 24 - 12
TABLE: list[tuple] = []

# (name, faults, seed, expected created as a function of the injected counts)
MATRIX = [
    ("none", Faults(), 0, lambda i: 3),
    ("429 on creates", Faults(rate_429=0.5, status_routes=["create"]), 14, lambda i: 3),
    ("500/503 on every route", Faults(rate_500=0.15, rate_503=0.15), 14, lambda i: 3),
    ("drop before create", Faults(drop_before_create=0.5), 14, lambda i: 3),
    ("drop after create", Faults(drop_after_create=0.5), 14, lambda i: 3),
    ("Job failed", Faults(fail_rate=0.5), 14, lambda i: 3 + i.get("fail_rate", 0)),
    ("truncated downloads", Faults(truncate_download_rate=0.5), 14, lambda i: 3),
    ("corrupt downloads", Faults(corrupt_download_rate=0.5), 14, lambda i: 3),
    ("jitter", Faults(latency_jitter=1.0), 14, lambda i: 3),
]


@pytest.fixture()
def faulty(tmp_path, monkeypatch):
    """A fresh emulator per row (its own seeded RNG), pointed at by the SDK's env."""
    emulators = []

    def start(faults: Faults, seed: int = 0, latency: float = 0.0, **account) -> Emulator:
        emu = Emulator(tmp_path / f"account{len(emulators)}", latency=latency, faults=faults,
                       seed=seed, **account)
        emu.start()
        emulators.append(emu)
        monkeypatch.setenv("LUMAAI_API_KEY", TEST_KEY)
        monkeypatch.setenv("LUMAAI_BASE_URL", emu.base_url)
        monkeypatch.setenv("LUMA_AGENTS_API_KEY", TEST_KEY)
        monkeypatch.setenv("LUMA_BASE_URL", emu.agents_base_url)
        return emu

    yield start
    for emu in emulators:
        emu.stop()
    assert _held_slots() == 0  # every row gives its generation slots back


def _held_slots() -> int:
    from prefect.client.orchestration import get_client

    from reelflow.tasks.luma import LUMA_CONCURRENCY_LIMIT

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(LUMA_CONCURRENCY_LIMIT)
        except Exception:  # noqa: BLE001 - no render made the limit yet: nothing is held
            return 0
    return limit.active_slots


@pytest.fixture(scope="module", autouse=True)
def fault_table():
    """Prints the rows this process ran (`pytest -s` shows it; under xdist, per worker)."""
    yield
    if TABLE:
        print(f"\n{'fault':<32} injected  created  expected  output ok")
        for name, injected, created, want, ok in TABLE:
            print(f"{name:<32} {injected:>8} {created:>8} {want:>9}  {ok}")


@pytest.mark.parametrize("name,faults,seed,expected", MATRIX, ids=[row[0] for row in MATRIX])
def test_fault_matrix(name, faults, seed, expected, tmp_path, home, faulty):
    from reelflow.flows.render import render_sequence
    from reelflow.tasks._probe import probe

    emu = faulty(faults, seed, latency=0.5 if name == "jitter" else 0.0)
    path = write_shotlist(tmp_path, SHOTS)

    report = render_sequence(str(path))

    stats = emu.stats()
    injected = stats["injected"]
    want = expected(injected)
    frames = media_facts(report.output)["frames"]
    TABLE.append((name, sum(injected.values()), stats["created"], want, frames == FRAMES))
    assert name in ("none", "jitter") or sum(injected.values()) > 0, "the fault never fired"
    assert stats["created"] == want
    assert report.generated == 3
    assert frames == FRAMES
    for clip in (home / "clips").glob("*/*.mp4"):  # nothing short or corrupt entered the store
        assert probe(clip).frames == 120


def test_moderation_policies(tmp_path, home, faulty):
    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(moderation_pattern="hawk"), 0)
    path = write_shotlist(tmp_path, SHOTS)

    with pytest.raises(ModerationRefused) as refused:
        render_sequence(str(path))
    assert refused.value.shot_id == "two" and "moderation" in refused.value.failure_reason
    created = emu.stats()["created"]
    assert created == 3  # refused once, never resubmitted

    skipped = render_sequence(str(path), on_moderation="skip")
    assert media_facts(skipped.output)["frames"] == 10 * 24 - 12
    assert [r.status for r in skipped.shot_results] == ["cached", "refused", "cached"]

    slate = render_sequence(str(path), on_moderation="placeholder")
    assert media_facts(slate.output)["frames"] == FRAMES
    # the refusal is recorded: neither policy run pays for the refused shot again
    assert emu.stats()["created"] == created


def test_thirty_shots_under_account_limits_and_random_faults(tmp_path, home, faulty):
    """The account's real limits (10 in progress, 20 creates a minute) plus 10% random
    429/5xx/dropped connections: every shot is generated exactly once, nothing fails."""
    from reelflow.flows.render import render_sequence

    faults = Faults.account_limits(rate_429=0.03, rate_500=0.02, rate_503=0.02,
                                   drop_before_create=0.015, drop_after_create=0.015)
    emu = faulty(faults, 7, latency=1.0)
    shots = [{"id": f"s{i:02d}", "prompt": f"Shot {i}: a lantern drifts over dark water",
              "resolution": "540p"} for i in range(30)]
    path = write_shotlist(tmp_path, shots)

    report = render_sequence(str(path))

    stats = emu.stats()
    assert stats["created"] == 30
    assert report.generated == 30
    # The limits were binding: 30 accepted creates at most 20 a minute span over a minute,
    # whether our own rate limit held them back or the account answered 429 (a fast
    # machine sees 429s, a slow one none: both are right, so neither is asserted).
    created_ts = sorted(r["created_ts"] for r in emu.account.records())
    assert len(created_ts) == 30 and created_ts[-1] - created_ts[0] >= WINDOW
    assert sum(v for k, v in stats["injected"].items() if k != "limit_429") > 0
    assert media_facts(report.output)["frames"] == 30 * 120
    TABLE.append(("30 shots, limits + 10%", sum(stats["injected"].values()), stats["created"], 30,
                  True))


def test_takes_of_one_request_lost_after_create_are_told_apart(tmp_path, home, faulty):
    """Three takes send identical payloads; every create's answer is lost after the account
    recorded it. Each take adopts a generation of its own: three created, three distinct."""
    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(drop_after_create=1.0))
    takes = [{"id": f"take{n}", "prompt": "A paper boat on a puddle", "resolution": "540p",
              "take": n} for n in (1, 2, 3)]
    report = render_sequence(str(write_shotlist(tmp_path, takes)))

    assert emu.stats()["created"] == 3 and emu.stats()["injected"]["drop_after_create"] == 3
    ids = [r.generation_id for r in report.shot_results]
    assert len(set(ids)) == 3 and set(ids) == {r["id"] for r in emu.account.records()}
    assert report.generated == 3


#: Four shots with one prompt, each adding one optional field (or none): what each one's
#: generation must have been made with, as the account echoes it.
NEAR_IDENTICAL = {"plain": set(), "start": {"keyframes"}, "loop": {"loop"}, "orbit": {"concepts"}}


def _near_identical_shots(directory) -> list[dict]:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0x3070b0:s=320x180", "-frames:v", "1", str(directory / "sky.png")],
                   check=True, timeout=60)
    shot = {"prompt": "A kite over a windy beach", "resolution": "540p"}
    return [dict(shot, id="plain"), dict(shot, id="start", start="sky.png"),
            dict(shot, id="loop", loop=True), dict(shot, id="orbit", camera=["orbit_left"])]


@pytest.mark.parametrize("name,faults,seed", [
    ("near-identical, late ans.", Faults(create_answer_delay=3, drop_before_create=0.5,
                                         status_routes=["create"]), 3),
    ("near-identical, ans. lost", Faults(drop_after_create=1.0), 0),
], ids=["late-and-dropped", "every-answer-lost"])
def test_near_identical_requests_with_lost_answers_each_get_their_own(name, faults, seed,
                                                                       tmp_path, home, faulty):
    """Issue 10's repro (late create answers, half the creates dropped: the plain shot once
    adopted the orbit shot's video), and every answer lost after the account made the
    generation. Each shot must get the generation made from its own request (checked on
    the account, and by the clip's bytes): created == 4."""
    from reelflow.flows.render import render_sequence

    emu = faulty(faults, seed, latency=1.0)
    report = render_sequence(str(write_shotlist(tmp_path, _near_identical_shots(tmp_path))))

    stats = emu.stats()
    records = {r["id"]: r for r in emu.account.records()}
    TABLE.append((name, sum(stats["injected"].values()), stats["created"], 4,
                  media_facts(report.output)["frames"] == 4 * 120))
    assert sum(stats["injected"].values()) > 0
    assert stats["created"] == 4 and report.generated == 4
    client = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"})
    for result in report.shot_results:
        echoed = records[result.generation_id]["request"]
        assert {f for f in ("keyframes", "loop", "concepts") if echoed.get(f)} == \
            NEAR_IDENTICAL[result.id], result.id
        video = client.get(f"/generations/{result.generation_id}").json()["assets"]["video"]
        assert hashlib.sha256(httpx.get(video, timeout=30).content).hexdigest() == result.sha256
    assert len({r.generation_id for r in report.shot_results}) == 4
    assert media_facts(report.output)["frames"] == 4 * 120


#: How a ledger record is broken: what is written over it.
CORRUPTIONS = {
    "empty": lambda text: "",
    "truncated": lambda text: text[: len(text) // 2],
    "wrong schema": lambda text: json.dumps({**json.loads(text), "attempts": "many",
                                             "sending_since": "yesterday"}),
}


def test_corrupt_ledger_records_are_recovered_from_the_account(tmp_path, home, faulty):
    """Each shot's record broken a different way (empty, truncated, wrong schema): `plan`
    says so in one line per file and works; the render recovers every record from the
    account, pays nothing and writes the same bytes."""
    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(), 0)
    path = write_shotlist(tmp_path, SHOTS)
    clean = render_sequence(str(path))
    first_bytes = sha256(clean.output)
    records = sorted((home / "ledger").glob("??/*.json"))
    assert len(records) == 3
    for record, corrupt in zip(records, CORRUPTIONS.values()):
        record.write_text(corrupt(record.read_text()))

    plan = run_cli(["plan", str(path), "--json"], env={"REELFLOW_HOME": str(home)})
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    warnings = plan.stderr.strip().splitlines()
    assert len(warnings) == 3 and all("unreadable" in w for w in warnings)
    assert {str(r) for r in records} == {w.split()[2] for w in warnings}

    again = render_sequence(str(path))
    TABLE.append(("corrupt ledger records", 3, emu.stats()["created"], 3,
                  sha256(again.output) == first_bytes))
    assert emu.stats()["created"] == 3 and again.generated == 0
    assert sha256(again.output) == first_bytes
    assert [r.generation_id for r in again.shot_results] == \
        [r.generation_id for r in clean.shot_results]
    assert all(json.loads(r.read_text())["generation_id"] for r in records)  # repaired


def test_empty_account_is_refused_before_any_create(tmp_path, home, faulty):
    from reelflow.errors import GenerationFailed
    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(), credits=0)
    path = write_shotlist(tmp_path, SHOTS[:1])
    with pytest.raises(GenerationFailed, match="no credits left"):
        render_sequence(str(path))
    assert emu.created_count() == 0


def test_create_refused_by_the_api_is_a_clear_failure(tmp_path, home, faulty):
    """A 402 (too few credits for this clip) fails the shot with the API's words, unretried."""
    from reelflow.errors import GenerationFailed
    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(enforce_credits=True), credits=50)
    path = write_shotlist(tmp_path, [dict(SHOTS[0], resolution="720p", duration="9s")])
    with pytest.raises(GenerationFailed, match="402"):
        render_sequence(str(path))
    assert emu.stats()["injected"].get("insufficient_credits", 0) == 1
    assert emu.created_count() == 0


# (row, how the file is damaged, the file under REELFLOW_HOME, what to delete so it is read)
CORRUPT_CACHES = [
    ("stored clip cut short", "cut short", "clips/*/*.mp4", ["cache/media"]),
    ("stored clip bytes flipped", "bytes changed", "clips/*/*.mp4", ["cache/media"]),
    ("conformed clip flipped", "bytes changed", "cache/media/conform/*.mp4", []),
    ("seam cut short", "cut short", "cache/media/pieces/*.mp4", ["cache/media/final"]),
    ("final cut short", "cut short", "cache/media/final/*.mp4", []),
]


def test_corrupt_caches(tmp_path, home, faulty):
    """Each kept level damaged in turn, then a rerun: the same bytes out, nothing created
    (a damaged stored clip is fetched again from its recorded generation, for free)."""
    import shutil

    from reelflow.flows.render import render_sequence

    emu = faulty(Faults(), 0)
    path = write_shotlist(tmp_path, SHOTS)
    clean = sha256(render_sequence(str(path)).output)
    for name, how, pattern, delete in CORRUPT_CACHES:
        damage(sorted(home.glob(pattern))[0], how)
        for folder in delete:
            shutil.rmtree(home / folder)
        report = render_sequence(str(path))
        ok = sha256(report.output) == clean and report.frames == FRAMES and report.generated == 0
        TABLE.append((name, 1, emu.stats()["created"], 3, ok))
        assert emu.stats()["created"] == 3 and ok, name


# The Ray 3.2 column: the same faults against the Agents API (no list route, no idempotency
# key). Where a create's answer is lost (dropped before or after the account recorded it, a
# 5xx after the request left) the API cannot be asked, so the shot stops (AnswerLost) and is
# never sent again; the user's way on (here, as if read off Luma's dashboard: adopt what the
# account made, resend what it did not) then completes the render. Every row ends with each
# request made exactly once (plus one per injected generic failure).
RAY32_SHOTS = [dict(shot, model="ray-3.2", resolution="360p") for shot in SHOTS]
RAY32_MATRIX = [
    ("none", Faults(), 0),
    ("429 on every route", Faults(rate_429=0.3), 14),
    ("500/503 on every route", Faults(rate_500=0.15, rate_503=0.15), 14),
    ("drop before create", Faults(drop_before_create=0.5), 14),
    ("drop after create", Faults(drop_after_create=0.5), 14),
    ("Job failed", Faults(fail_rate=0.3), 14),
    ("rate_limited failure", Faults(fail_first=1, fail_code="rate_limited"), 0),
    ("truncated downloads", Faults(truncate_download_rate=0.5), 14),
    ("corrupt downloads", Faults(corrupt_download_rate=0.5), 14),
    ("jitter", Faults(latency_jitter=1.0), 14),
]


def _resolve_in_doubt(emu, shots) -> int:
    """Decide every create in doubt as a user reading the account would; returns how many."""
    from reelflow.flows.resolve import resolve_send
    from reelflow.tasks._ledger import Ledger

    ledger = Ledger.default()
    prompts = {shot["id"]: shot["prompt"] for shot in shots}
    doubted = [e for e in ledger.entries() if e.sending_since and not e.generation_id]
    for entry in doubted:
        made = [r["id"] for r in emu.agents.records()
                if r["request"]["prompt"] == prompts[entry.shot_id]]
        resolve_send(entry.shot_id, generation_id=made[-1] if made else None,
                     resend=not made, ledger=ledger)
    return len(doubted)


@pytest.mark.parametrize("name,faults,seed", RAY32_MATRIX, ids=[row[0] for row in RAY32_MATRIX])
def test_fault_matrix_ray32(name, faults, seed, tmp_path, home, faulty):
    from reelflow.flows.render import render_sequence

    emu = faulty(faults, seed, latency=0.5 if name == "jitter" else 0.0)
    path = write_shotlist(tmp_path, RAY32_SHOTS)
    try:
        report = render_sequence(str(path))
        stopped = 0
    except AnswerLost as lost:
        assert "reelflow resolve" in str(lost) and str(home / "ledger") in str(lost)
        sent = emu.agents_created_count()
        emu.set_faults(Faults())
        stopped = _resolve_in_doubt(emu, RAY32_SHOTS)
        assert stopped and emu.agents_created_count() == sent  # nothing was sent again
        report = render_sequence(str(path))

    injected = emu.stats()["injected"]
    lost = injected.get("drop_before_create", 0) + injected.get("drop_after_create", 0)
    if name.startswith("drop"):
        assert stopped == lost > 0
    want = 3 + injected.get("fail_rate", 0) + injected.get("fail_first", 0)
    created = emu.agents_created_count()
    prompts = [r["request"]["prompt"] for r in emu.agents.records()]
    frames = media_facts(report.output)["frames"]
    TABLE.append((f"ray-3.2 {name}", sum(injected.values()), created, want, frames == FRAMES))
    assert name in ("none", "jitter") or sum(injected.values()) > 0, "the fault never fired"
    assert created == want and len(set(prompts)) == 3
    assert emu.created_count() == 0  # the Dream Machine API was never asked
    assert frames == FRAMES


def test_rate_limited_generation_is_waited_out_and_sent_again_ray32(tmp_path, home, faulty):
    """A ray-3.2 generation that fails ``rate_limited`` (the Agents API refunds it) is waited
    out and sent again; the render finishes with one extra create, billed once per clip."""
    from reelflow.flows.render import render_sequence
    from reelflow.tasks import _generate
    from reelflow.tasks._ledger import Ledger

    emu = faulty(Faults(fail_first=1, fail_code="rate_limited"), 0)
    path = write_shotlist(tmp_path, RAY32_SHOTS)

    report = render_sequence(str(path))

    records = emu.agents.records()
    failed = [r for r in records if r["failure"]]
    assert len(records) == 4 and [r["failure"]["code"] for r in failed] == ["rate_limited"]
    resent = [r for r in records if r["request"]["prompt"] == failed[0]["request"]["prompt"]]
    assert [r["seq"] for r in resent][0] == failed[0]["seq"] and len(resent) == 2
    waited = resent[1]["created_ts"] - failed[0]["created_ts"]
    assert waited >= _generate.RATE_LIMITED_WAIT_S  # waited out, not resent at once
    account = emu.agents.summary()
    assert (account["credits_spent"], account["credits_refunded"]) == (3 * 6.0, 6.0)  # cents
    assert report.generated == 3 and report.cost_usd == 0.18
    assert media_facts(report.output)["frames"] == FRAMES
    entry = next(e for e in Ledger.default().entries() if len(e.history) > 1)
    assert [a.state for a in entry.history] == ["failed", "completed"]
    assert entry.history[0].generation_id == failed[0]["id"]

    again = render_sequence(str(path))
    assert (again.generated, emu.agents_created_count()) == (0, 4)


def test_moderation_and_budget_exhausted_ray32(tmp_path, home, faulty):
    """content_moderated follows the moderation policy (never resubmitted);
    budget_exhausted stops every later create to the account before it is sent."""
    from reelflow.flows.render import render_sequence
    from reelflow.tasks import _generate
    from reelflow.tasks._agents import Agents
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks.luma import LumaCredentials
    from reelflow.tasks.models import GenerationRequest
    from reelflow.tasks.store import ClipStore

    emu = faulty(Faults(moderation_pattern="hawk"), 0)
    path = write_shotlist(tmp_path, RAY32_SHOTS)
    with pytest.raises(ModerationRefused) as refused:
        render_sequence(str(path))
    assert refused.value.shot_id == "two" and refused.value.failure_code == "content_moderated"
    skipped = render_sequence(str(path), on_moderation="skip")
    assert [r.status for r in skipped.shot_results] == ["cached", "refused", "cached"]
    assert emu.agents_created_count() == 3

    broke = faulty(Faults(enforce_credits=True), 0, credits=0.05)  # less than one 360p clip
    agents = Agents(LumaCredentials.from_env().get_agents_client())
    store, ledger = ClipStore.default(), Ledger.default()
    first = GenerationRequest(model="ray-3.2", prompt="A kite over dunes", resolution="360p")
    with pytest.raises(GenerationFailed) as exhausted:
        _generate.generate(first, shot_id="a", provider=agents, store=store, ledger=ledger)
    assert exhausted.value.failure_code == "budget_exhausted"
    assert broke.agents_created_count() == 1
    second = first.model_copy(update={"prompt": "A boat on a lake"})
    with pytest.raises(GenerationFailed, match="budget is exhausted"):
        _generate.generate(second, shot_id="b", provider=agents, store=store, ledger=ledger)
    assert broke.agents_created_count() == 1  # stopped before the create
