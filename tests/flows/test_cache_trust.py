"""Every cached byte is checked before it is trusted: damage any level, rerun, same output.

One clean render of a small list (two generated shots, a trim, a crossfade, a title card)
is the reference. Each case damages one kind of kept file in that home (cut short, or
bytes changed in place), renders again and asserts: the output is byte-identical to the
clean render, nothing was created on the emulator, and exactly one warning named the
damaged file. The issue's three repros run through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import TEST_KEY, damage, flip_bytes, media_facts, run_cli, sha256, write_shotlist
from tests.tasks.test_cache_checks import start_holder

pytestmark = pytest.mark.usefixtures("prefect_api")

SHOTS = [
    {"id": "alpha", "prompt": "Cache check: a red kite over green hills", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "beta", "prompt": "Cache check: a blue boat on a calm lake", "resolution": "540p",
     "trim": [1, 4]},
    {"id": "gamma", "title": "The End", "duration": 2},
]
FRAMES = (5 + 3 + 2) * 24 - 12


class Clean:
    """The reference render and where its home is."""

    def __init__(self, path: Path, home: Path, output_sha: str, poster_sha: str, report):
        self.path, self.home, self.output_sha, self.poster_sha = path, home, output_sha, poster_sha
        self.report = report

    @property
    def media(self) -> Path:
        return self.home / "cache" / "media"

    def stored_clip(self, shot: str) -> Path:
        sha = next(r.sha256 for r in self.report.shot_results if r.id == shot)
        return self.home / "clips" / sha[:2] / f"{sha}.mp4"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, emulator):
    """Render SHOTS once in a home of this module's own; later cases damage that home."""
    from reelflow.flows.render import render_sequence

    root = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REELFLOW_HOME", str(root / "home"))
        mp.setenv("LUMAAI_API_KEY", TEST_KEY)
        mp.setenv("LUMAAI_BASE_URL", emulator.base_url)
        mp.delenv("REELFLOW_STORE", raising=False)
        path = write_shotlist(root, SHOTS)
        report = render_sequence(str(path))
        assert report.frames == FRAMES
        clean = Clean(path, root / "home", sha256(report.output), sha256(report.poster), report)
        clean.sheet_sha = sha256(report.contact_sheet)
        yield clean


def _one(media: Path, kind: str, pattern: str = "*.mp4") -> Path:
    return sorted((media / kind).glob(pattern))[0]


# level -> (the file to damage, files to delete so the damaged one is read)
LEVELS = {
    "stored clip": lambda c: (c.stored_clip("alpha"), [c.media]),
    "conformed clip": lambda c: (_one(c.media, "conform"), []),
    "seam": lambda c: (_one(c.media, "pieces"), [*c.media.glob("final/*")]),
    "title card": lambda c: (_one(c.media, "cards"), []),
    "finished sequence": lambda c: (_one(c.media, "final"), []),
    "deliverable (poster)": lambda c: (_one(c.media, "deliver", "*.jpg"), []),
    "audio track": lambda c: (_one(c.media, "audio", "*.m4a"), [*c.media.glob("final/*")]),
    "contact-sheet tile": lambda c: (_one(c.media, "tiles", "*.png"),
                                     [*c.media.glob("deliver/*.png")]),
}


@pytest.mark.parametrize("how", ["cut short", "bytes changed"])
@pytest.mark.parametrize("level", list(LEVELS))
def test_damaged_level_is_rebuilt_to_the_same_output(level, how, clean, emulator, monkeypatch,
                                                     caplog):
    from reelflow.flows.render import render_sequence

    monkeypatch.setenv("REELFLOW_HOME", str(clean.home))
    monkeypatch.setenv("LUMAAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("LUMAAI_BASE_URL", emulator.base_url)
    target, read_it = LEVELS[level](clean)
    damage(target, how)
    for path in read_it:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    before = emulator.created_count()

    report = render_sequence(str(clean.path))

    assert emulator.created_count() == before  # 0 paid: a stored clip comes from its generation
    assert (report.generated, report.cached) == (0, 2)
    assert sha256(report.output) == clean.output_sha
    assert sha256(report.poster) == clean.poster_sha
    assert sha256(report.contact_sheet) == clean.sheet_sha
    named = [r.getMessage() for r in caplog.records
             if r.levelno == logging.WARNING and target.name in r.getMessage()]
    assert len(named) == 1 and "damaged" in named[0], named
    assert target.is_file() and sha256(target) == json.loads(
        Path(f"{target}.sum").read_text())["sha256"]  # made again, recorded again


def _cli_render(clean: Clean, emulator, api: str, out: Path):
    env = {"REELFLOW_HOME": str(clean.home), "LUMAAI_API_KEY": TEST_KEY,
           "LUMAAI_BASE_URL": emulator.base_url, "PREFECT_API_URL": api}
    return run_cli(["render", str(clean.path), "--json", "--out", str(out)], env=env)


@pytest.mark.parametrize("repro", ["final cut to 20 kB", "stored clip bytes flipped",
                                   "stored clip cut short"])
def test_issue_repros_through_the_cli(repro, clean, emulator, prefect_api, tmp_path):
    """Issue 10's repros: each was exit 0 with a bad video, or a traceback on every run."""
    if repro == "final cut to 20 kB":
        os.truncate(_one(clean.media, "final"), 20_000)
    elif repro == "stored clip bytes flipped":
        flip_bytes(clean.stored_clip("beta"), at=20_000, count=400)
        shutil.rmtree(clean.media)  # so the clip is read: conformed and mixed again
    else:
        os.truncate(clean.stored_clip("beta"), 20_000)
    before = emulator.created_count()

    runs = 2 if repro == "stored clip cut short" else 1  # that one failed every later run
    for attempt in range(runs):
        out = tmp_path / f"out{attempt}.mp4"
        result = _cli_render(clean, emulator, prefect_api, out)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert media_facts(out)["frames"] == FRAMES  # every frame decodes
        assert sha256(out) == clean.output_sha
        damaged = [line for line in result.stderr.splitlines() if "damaged" in line]
        assert len(damaged) == (1 - attempt), result.stderr  # said once, then healed
    assert emulator.created_count() == before


def test_clip_rotted_with_size_and_mtime_intact_is_caught_when_read(clean, emulator,
                                                                     prefect_api, tmp_path):
    """Bit rot passes the fast check (size and mtime as recorded), but a clip is hashed before
    it is conformed: that run stops with one line and no output; the next one heals."""
    clip = clean.stored_clip("alpha")
    stat = clip.stat()
    flip_bytes(clip, at=30_000, count=8)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.rmtree(clean.media)
    before = emulator.created_count()

    failed = _cli_render(clean, emulator, prefect_api, tmp_path / "out.mp4")

    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "no longer matches its SHA-256" in failed.stderr and clip.name in failed.stderr
    assert not (tmp_path / "out.mp4").exists()
    healed = _cli_render(clean, emulator, prefect_api, tmp_path / "out.mp4")
    assert healed.returncode == 0, healed.stderr
    assert sha256(tmp_path / "out.mp4") == clean.output_sha
    assert emulator.created_count() == before


def test_temp_files_of_dead_runs_are_swept_by_the_next_run(clean, emulator, prefect_api,
                                                           tmp_path):
    """A kill -9 leaves temp files in the media cache and the store; the next render removes
    those no live run owns and leaves a running process's alone."""
    roots = [clean.media, clean.home / "clips"]
    holders = [start_holder(root) for root in roots for _ in ("dead", "live")]
    dead, live = holders[0::2], holders[1::2]
    try:
        for proc, _ in dead:
            proc.kill()
            proc.wait(timeout=10)

        result = _cli_render(clean, emulator, prefect_api, tmp_path / "out.mp4")

        assert result.returncode == 0, result.stderr
        assert sha256(tmp_path / "out.mp4") == clean.output_sha
        assert [folder for _, folder in dead if folder.exists()] == []
        assert all((folder / "half-written.mp4").exists() for _, folder in live)
    finally:
        for proc, _ in live:
            proc.kill()
            proc.wait(timeout=10)


def test_s3_store_damage_is_fetched_again(tmp_path, home, luma_env, s3_credentials, monkeypatch,
                                          caplog):
    """With an S3 store: a damaged local copy is fetched again from S3; a damaged S3 object
    reads as absent, the clip is fetched again from its generation and stored over it.
    Nothing is paid."""
    import secrets

    from reelflow.flows.render import render_sequence

    server = s3_credentials
    prefix = f"t-{secrets.token_hex(4)}/clips"
    monkeypatch.setenv("REELFLOW_STORE", f"s3://{server.bucket}/{prefix}")
    path = write_shotlist(tmp_path, SHOTS[:2])
    first = render_sequence(str(path))
    logging.getLogger().addHandler(caplog.handler)  # Prefect's first run reset the root handlers
    clean, before = sha256(first.output), luma_env.created_count()
    sha = first.shot_results[0].sha256
    local, key = home / "clips" / sha[:2] / f"{sha}.mp4", f"{prefix}/{sha[:2]}/{sha}.mp4"

    flip_bytes(local, at=20_000)
    shutil.rmtree(home / "cache" / "media")
    assert sha256(render_sequence(str(path)).output) == clean  # the local copy came from S3

    server.client().put_object(Bucket=server.bucket, Key=key, Body=b"not the clip")
    local.unlink()
    shutil.rmtree(home / "cache" / "media")
    assert sha256(render_sequence(str(path)).output) == clean  # from its generation

    body = server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha  # stored again in S3
    assert luma_env.created_count() == before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if sha in w]) == 2, warnings
    assert any("damaged" in w for w in warnings) and any("does not match" in w for w in warnings)
