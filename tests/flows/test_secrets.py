"""The API key never lands in logs, artifacts, results, the clip store or the emulator's data."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.helpers import TEST_KEY, run_cli, start_standalone_emulator, write_png, write_shotlist

#: The Agents API's key (ray-3.2), a different recognisable secret.
AGENTS_KEY = "luma-agents-test-key-DO-NOT-LEAK-91c2"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits


def test_api_key_is_written_nowhere(tmp_path, prefect_api):
    from prefect.settings import get_current_settings

    emulator, url = start_standalone_emulator(tmp_path / "account")
    try:
        (tmp_path / "list").mkdir()
        write_png(tmp_path / "list" / "door.png", 640, 360)
        path = write_shotlist(tmp_path / "list", [
            {"id": "secret", "prompt": "A locked safe in a bank vault", "resolution": "540p",
             "text": {"content": "Vault"}},
            {"id": "newer", "model": "ray-3.2", "prompt": "The vault door swings open",
             "resolution": "360p", "start": "door.png"},  # through the Files API
            {"id": "card", "title": "Closing", "duration": 1}])
        env = {"LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url, "PREFECT_API_URL": prefect_api,
               "LUMA_AGENTS_API_KEY": AGENTS_KEY, "LUMA_BASE_URL": f"{url}/v1",
               "REELFLOW_HOME": str(tmp_path / "home"), "PREFECT_LOGGING_LEVEL": "DEBUG"}
        result = run_cli(["render", str(path), "--json"], env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["generated"] == 2
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)

    database = get_current_settings().server.database.connection_url.get_secret_value()
    db_file = Path(database.split("///", 1)[-1])
    assert db_file.is_file()
    for needle in (TEST_KEY.encode(), AGENTS_KEY.encode()):
        assert needle not in (result.stdout + result.stderr).encode()
        assert _files_containing(tmp_path, needle) == []  # home, store, ledger, files, outputs, emulator
        assert needle not in db_file.read_bytes()
        for wal in db_file.parent.glob(db_file.name + "-*"):
            assert needle not in wal.read_bytes()
    assert os.environ.get("LUMAAI_API_KEY") is None
