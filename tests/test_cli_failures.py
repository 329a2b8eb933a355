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


def _s3_case(s3_server, case: str) -> tuple[dict[str, str], int, str]:
    """(environment, exit code, fragment of the one line) for one broken S3 store setting."""
    env = {**s3_server.env(), "REELFLOW_STORE": f"s3://{s3_server.bucket}/clips"}
    if case == "wrong secret":
        return {**env, "AWS_SECRET_ACCESS_KEY": "wrong-" + s3_server.secret_key[::-1]}, 2, \
            "SignatureDoesNotMatch: the secret access key is wrong"
    if case == "unknown key id":
        return {**env, "AWS_ACCESS_KEY_ID": "AKIDNOTKNOWN0000"}, 2, "InvalidAccessKeyId"
    if case == "invalid bucket name":
        return {**env, "REELFLOW_STORE": "s3://Bad_Bucket/clips"}, 2, \
            "REELFLOW_STORE='s3://Bad_Bucket/clips': a bucket name has 3 to 63 characters"
    if case == "no such bucket":
        return {**env, "REELFLOW_STORE": "s3://no-such-bucket-reelflow/clips"}, 2, "NoSuchBucket"
    if case == "unreachable":
        return {**env, "REELFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9"}, 1, "S3 cannot be reached"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["wrong secret", "unknown key id", "invalid bucket name",
                                  "no such bucket", "unreachable"])
def test_a_broken_s3_store_is_one_line_before_any_spend(case, tmp_path, luma_env, s3_server):
    path = write_shotlist(tmp_path, ONE)
    env, code, fragment = _s3_case(s3_server, case)
    env.update({"REELFLOW_HOME": str(tmp_path / "home"), "LUMAAI_API_KEY": TEST_KEY,
                "LUMAAI_BASE_URL": luma_env.base_url})
    before = luma_env.created_count()

    for command in ("plan", "render"):
        result = run_cli([command, str(path)], env=env, timeout=120)
        line = _assert_one_line(result, code, "reelflow: ", fragment)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr   # before Prefect
        for secret in (s3_server.secret_key, env["AWS_SECRET_ACCESS_KEY"], TEST_KEY):
            assert secret not in result.stderr + result.stdout
        assert "prefect" not in line.lower()
    assert luma_env.created_count() == before
    assert not (tmp_path / "out.mp4").exists()


def test_an_s3_list_with_an_invalid_bucket_name_is_one_line(tmp_path):
    result = run_cli(["render", "s3://Bad_Bucket/lists/x.yaml"], timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "s3://Bad_Bucket/lists/x.yaml: a bucket name has 3 to 63 characters: lowercase letters, "
        "digits, '.' and '-', starting and ending with a letter or digit"]


def test_an_output_that_cannot_be_written_is_refused_before_any_spend(tmp_path, luma_env):
    """Found at the end of a paid render before (NotADirectoryError after the clips)."""
    path = write_shotlist(tmp_path, ONE)
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    env = {"REELFLOW_HOME": str(tmp_path / "home"), "LUMAAI_API_KEY": TEST_KEY,
           "LUMAAI_BASE_URL": luma_env.base_url}
    before = luma_env.created_count()
    for out, fragment in ((blocker / "x.mp4", "is a file, not a folder"),
                          (tmp_path, "is a folder; the output must be a file path")):
        result = run_cli(["render", str(path), "--out", str(out)], env=env, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith("list.yaml: output: ") and fragment in result.stderr
    assert luma_env.created_count() == before


def test_a_busy_port_for_the_emulator_is_one_line_and_verbose_first_shows_the_traceback(tmp_path):
    """The pass-through commands (emulator, serve, deploy) are under the same guard."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = ["emulator", "--port", str(busy.getsockname()[1]), "--data", str(tmp_path / "emu")]
        quiet = run_cli(args, timeout=60)
        loud = run_cli(["--verbose", *args], timeout=60)
    lines = quiet.stderr.strip().splitlines()
    assert quiet.returncode == 1 and len(lines) == 1, quiet.stderr
    assert lines[0].startswith("reelflow: emulator failed: OSError: ") and "already in use" in lines[0]
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "Address already in use" in loud.stderr
