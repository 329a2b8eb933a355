"""Every failure of the `reelflow` command is one line on stderr, never a traceback
(unless --verbose): runtime failures exit 1, bad input exits 2 before anything is spent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import TEST_KEY, run_cli, write_shotlist

ONE = [{"id": "one", "prompt": "A lighthouse at night, beams sweeping", "resolution": "540p"}]


def _tiny_disk_cli(mount: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`reelflow ARGS` with a 64 KiB tmpfs mounted at ``mount``, in a private mount namespace
    (`unshare --map-root-user --mount`: no root needed, nothing left mounted afterwards)."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux `unshare` is needed to mount a tiny tmpfs for the disk-full test")
    script = 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"'
    argv = ["unshare", "--map-root-user", "--mount", "sh", "-c", script, mount,
            sys.executable, "-m", "reelflow.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def _assert_one_line(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    mine = [line for line in result.stderr.splitlines() if line.startswith("reelflow: ")
            or ": output.path: " in line]
    assert len(mine) == 1, result.stderr
    for fragment in fragments:
        assert fragment in mine[0], mine[0]
    return mine[0]


def test_disk_full_at_the_output_is_one_line_and_verbose_shows_the_traceback(
        tmp_path, luma_env, prefect_api):
    """The output folder is a 64 KiB tmpfs: the draft does not fit (ENOSPC, errno 28)."""
    full = tmp_path / "full"
    full.mkdir()
    path = write_shotlist(tmp_path, ONE, output={"path": str(full / "out.mp4"),
                                                 "resolution": "540p", "fps": 24})
    env = {"PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(tmp_path / "home"),
           "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": luma_env.base_url}
    before = luma_env.created_count()

    result = _tiny_disk_cli(str(full), ["render", str(path), "--profile", "draft"], env)

    line = _assert_one_line(result, 1, "reelflow: render failed: ", "No space left on device",
                            str(full))
    assert "[Errno 28]" in line and TEST_KEY not in result.stderr
    assert luma_env.created_count() == before + 1          # the clip was paid for once...
    verbose = _tiny_disk_cli(str(full), ["render", str(path), "--profile", "draft", "--verbose"], env)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
    assert "No space left on device" in verbose.stderr
    assert luma_env.created_count() == before + 1          # ...and is reused, not paid again
