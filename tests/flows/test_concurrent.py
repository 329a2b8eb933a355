"""Two renders of the same list started together: each generation is created once in total."""

from __future__ import annotations

import os
import signal

from tests.helpers import (TEST_KEY, emulator_created, render_together, sha256,
                           start_standalone_emulator, write_shotlist)

SHOTS = [
    {"id": "north", "prompt": "Snow falls on a northern forest", "resolution": "540p"},
    {"id": "south", "prompt": "Palm trees sway on a southern beach", "resolution": "540p"},
]


def test_two_concurrent_renders_pay_once(tmp_path, prefect_api):
    emulator, url = start_standalone_emulator(tmp_path / "account", latency=3)
    try:
        path = write_shotlist(tmp_path, SHOTS)
        env = {**os.environ, "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url,
               "PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(tmp_path / "home")}
        reports = render_together(path, env, tmp_path)

        assert emulator_created(url) == 2
        assert sum(r["generated"] for r in reports) == 2  # paid once in total, by whichever got there first
        assert sha256(tmp_path / "out0.mp4") == sha256(tmp_path / "out1.mp4")
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)
