"""Distributed shots with local inputs: a keyframe image (both APIs) and a uni-1 still reach a
task worker through the shared S3 store, by content hash; paid once, the same output as one machine."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest

from tests.helpers import sha256, write_png, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")

SHOTS = [
    {"id": "door", "prompt": "Mara opens the door and steps out", "model": "ray-2",
     "resolution": "540p", "start": {"image": "Mara at a red door, dusk", "refs": ["mara"]}},
    {"id": "kite", "prompt": "A kite lifts off the grass", "model": "ray-flash-2",
     "resolution": "540p", "start": "kite.png"},
    {"id": "hall", "prompt": "A long hall, light at its end", "model": "ray-3.2",
     "resolution": "360p", "start": "hall.png"},
]


def _write(folder):
    folder.mkdir(parents=True, exist_ok=True)
    write_png(folder / "mara.png", 64, 96, colour=200)
    write_png(folder / "kite.png", 96, 54, colour=60)
    write_png(folder / "hall.png", 96, 54, colour=150)
    path = write_shotlist(folder, SHOTS, output={"path": "out.mp4", "resolution": "360p"})
    path.write_text(path.read_text(encoding="utf-8") + "characters:\n  mara: mara.png\n",
                    encoding="utf-8")
    return path


def _worker(tmp_path, prefect_api, store_url):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "REELFLOW_STORE": store_url,
           "REELFLOW_HOME": str(tmp_path / "worker-home"), "REELFLOW_SWEEP_S": "0"}
    log = open(tmp_path / "worker.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "reelflow.cli", "worker", "--limit", "4"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_local_images_and_stills_render_on_a_worker_paid_once(tmp_path, monkeypatch, luma_env,
                                                              s3_credentials, prefect_api):
    from reelflow.flows.render import render_sequence
    from reelflow.tasks.store import ClipStore

    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "one-machine"))
    reference = render_sequence(str(_write(tmp_path / "one")))

    store_url = f"s3://{s3_credentials.bucket}/dist-{secrets.token_hex(4)}"
    worker = _worker(tmp_path, prefect_api, store_url)
    try:
        monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "flow-machine"))
        monkeypatch.setenv("REELFLOW_STORE", store_url)
        path = _write(tmp_path / "two")
        dm, agents = luma_env.created_count(), luma_env.agents_created_count()
        started = time.monotonic()
        report = render_sequence(str(path), distribute=True)
        # door and kite on the Dream Machine API; door's still and hall on the Agents API
        assert (luma_env.created_count() - dm, luma_env.agents_created_count() - agents) == (2, 2)
        clips = {s.id: s.sha256 for s in report.shot_results}
        # the images' shots are byte for byte one machine's (the worker sent the same bytes);
        # the still-started shot differs from the reference only because its still is another
        # paid generation (the emulator's still depends on the upload's file id)
        reference_clips = {s.id: s.sha256 for s in reference.shot_results}
        assert {k: clips[k] for k in ("kite", "hall")} == {k: reference_clips[k] for k in ("kite", "hall")}
        assert report.generated == 3
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
        # the worker fetched every input by hash from the store into its own cache
        worker_store = ClipStore.from_url(store_url, root=tmp_path / "worker-home" / "clips")
        still = next(s for s in report.stills if s.label == "door.start")
        for sha, suffix in ((sha256(path.parent / "kite.png"), ".png"),
                            (sha256(path.parent / "hall.png"), ".png"), (still.sha256, ".png")):
            assert worker_store._resolve_path(sha, suffix).is_file(), (sha, suffix)

        # one machine on the same store, a fresh home: nothing paid, the same output
        monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "another-machine"))
        single = render_sequence(str(path), out=str(tmp_path / "single.mp4"), distribute=False)
        assert (luma_env.created_count() - dm, luma_env.agents_created_count() - agents) == (2, 2)
        assert single.generated == 0 and sha256(single.output) == sha256(report.output)
        print(f"distributed with local inputs: {time.monotonic() - started:.1f}s")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
