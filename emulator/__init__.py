"""A Luma API emulator: the real ``lumaai`` and ``luma-agents`` SDKs work against it unchanged.

    with Emulator(tmp_path, latency=0.0) as emu:
        client = lumaai.LumaAI(auth_token="test", base_url=emu.base_url)
        generation = client.generations.create(model="ray-2", prompt="a red fox")
        agents = luma_agents.Luma(auth_token="test", base_url=emu.agents_base_url)
        clip = agents.generations.create(model="ray-3.2", prompt="a red fox")

One port serves both APIs: the Dream Machine API at ``http://127.0.0.1:P`` (also under
``/dream-machine/v1``, its real path) and the Agents API (ray-3.2, uni-1, Files) at
``http://127.0.0.1:P/v1``, the path shape of its real base URL (agents_server.py).

It persists an account in a data directory (generations, credits, rendered clips,
counters), derives each generation's state from its creation time and the latency, and
renders deterministic H.264 clips at Luma's sizes (keyframe images: a slow zoom/pan
over the fetched image). ``faults=Faults(...)`` injects errors and enforces the account
limits (see :class:`Faults`). ``reelflow emulator`` / ``python -m reelflow.emulator`` run
it in the foreground (see :func:`main`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from reelflow.emulator import agents_server, spec
from reelflow.emulator.account import Account
from reelflow.emulator.agents_account import DEFAULT_IMAGE_LONG_SIDE, AgentsAccount
from reelflow.emulator.faults import FaultInjector, Faults, load_faults
from reelflow.emulator.server import EmulatorServer

__all__ = ["Emulator", "Faults", "account_report", "load_faults", "main"]

log = logging.getLogger("reelflow.emulator")


class Emulator:
    """An emulator on a loopback port, serving from a daemon thread."""

    def __init__(self, data_dir: str | os.PathLike[str], *, latency: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0,
                 credits: float = spec.DEFAULT_CREDITS, faults: Faults | None = None,
                 seed: int = 0, conformance: bool = False, output_url_ttl: float = 3600.0,
                 image_long_side: int = DEFAULT_IMAGE_LONG_SIDE, hdr_access: bool = True,
                 trust_ca: str | os.PathLike[str] | None = None):
        self.data_dir = Path(data_dir)
        self.latency = float(latency)
        self.host, self.port = host, port
        self.account = Account(self.data_dir, latency=self.latency, credits=credits)
        self.agents = AgentsAccount(self.data_dir, latency=self.latency, budget=credits,
                                    image_long_side=image_long_side, trust_ca=trust_ca)
        self.conformance, self.output_url_ttl = conformance, output_url_ttl
        self.hdr_access = hdr_access
        self.injector = FaultInjector(faults, seed)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve in a daemon thread; return the base URL (http://127.0.0.1:PORT)."""
        if self._server is not None:
            return self.base_url
        self._server = EmulatorServer((self.host, self.port), self.account, self.injector,
                                      self.agents, conformance=self.conformance,
                                      output_url_ttl=self.output_url_ttl,
                                      hdr_access=self.hdr_access)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="reelflow-emulator", daemon=True)
        self._thread.start()
        log.info("Luma emulator at %s (data %s, latency %gs)",
                 self.base_url, self.data_dir, self.latency)
        return self.base_url

    def stop(self) -> None:
        """Stop serving, close the socket and let running renders finish."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()  # keep-alive clients must see the server gone
        if self._thread is not None:
            self._thread.join(5)
        self.account.wait_for_renders(timeout=10)
        self.agents.wait_for_renders(timeout=10)

    @property
    def base_url(self) -> str:
        """The URL to pass as the SDK's ``base_url``; raises if not started."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._server.base_url

    @property
    def agents_base_url(self) -> str:
        """The luma-agents SDK's ``base_url`` (``<base_url>/v1``); raises if not started."""
        return self.base_url + agents_server.PREFIX

    def agents_created_count(self) -> int:
        """How many Agents API creates produced a generation in this data dir, ever."""
        return int(self.agents.state()["created"])

    def created_count(self) -> int:
        """How many create calls produced a generation in this data dir, ever."""
        return self.account.created_count()

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self.injector.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults at run time (counters and the seeded RNG carry on)."""
        self.injector.set(faults)

    def stats(self) -> dict[str, Any]:
        """Persisted counters plus this process's requests per route, injected faults
        (``injected: {name: count}``) and creates the SDK retried (``create_retries``)."""
        if self._server is not None:
            return self._server.stats()
        stats = self.account.stats()
        stats.update(agents=self.agents.summary(), requests={}, injected=self.injector.injected(),
                     create_retries=self.injector.create_retries)
        return stats

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _default_data_dir() -> Path:
    from reelflow.config import reelflow_home

    return reelflow_home() / "emulator"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelflow emulator",
        description="Run the Luma API emulator in the foreground until Ctrl-C / SIGTERM.")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks any free port (default: 0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--data", type=Path, default=None,
                        help="account directory (default: $REELFLOW_HOME/emulator)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds from create to completed (default 0)")
    parser.add_argument("--credits", type=float, default=spec.DEFAULT_CREDITS,
                        help="starting credit balance of a new account, USD cents (default: %(default)g)")
    parser.add_argument("--output-url-ttl", type=float, default=3600.0, metavar="S",
                        help="seconds an Agents API output URL stays valid (default 3600)")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_LONG_SIDE,
                        metavar="PX", help="long side of uni-1 stills (default 2048)")
    parser.add_argument("--no-hdr-access", dest="hdr_access", action="store_false",
                        help="an account without HDR access: hdr requests answer 403 "
                             "(default: HDR allowed)")
    parser.add_argument("--trust-ca", type=Path, default=None, metavar="PEM",
                        help="also trust this CA when fetching https inputs (URLs in Agents "
                             "API requests), e.g. a private server's self-signed certificate "
                             "(default: the system's trust store only)")
    parser.add_argument("--conformance", action="store_true",
                        help="answer like a schema-level mock server, for the SDKs' "
                             "generated test suites: unknown ids get stand-ins (default: off)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each generation and render to stderr (default: off)")
    faults = parser.add_argument_group(
        "fault injection", "A faults file (YAML or JSON, the Faults fields) and/or flags; "
        "a flag overrides the file. Probabilities are 0..1 per request.")
    faults.add_argument("--faults", type=Path, metavar="FILE", help="faults file (default: none)")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault RNG (default 0)")
    faults.add_argument("--account-limits", action="store_true",
                        help="the real account's limits: --max-concurrent 10 "
                             "--creates-per-minute 20 --enforce-credits (default: off)")
    for name, field in Faults.model_fields.items():
        flag = "--" + name.replace("_", "-")
        shown = "off" if field.default in (None, False) else field.default
        text = f"{field.description} (default: the faults file's, else {shown})"
        if field.annotation is bool:
            faults.add_argument(flag, action="store_true", default=None, help=text)
        elif name == "status_routes":
            faults.add_argument(flag, type=lambda v: [r for r in v.split(",") if r],
                                metavar="R1,R2", help=text)
        else:
            kind = int if "int" in str(field.annotation) else \
                str if "str" in str(field.annotation) else float
            faults.add_argument(flag, type=kind, help=text)
    return parser


def _faults_from(args: argparse.Namespace) -> Faults:
    """The Faults of a command line: file, then --account-limits, then single flags."""
    values = load_faults(args.faults).model_dump(exclude_unset=True) if args.faults else {}
    if args.account_limits:
        values.update(Faults.account_limits().model_dump(exclude_unset=True))
    for name in Faults.model_fields:
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return Faults.model_validate(values)


def main(argv: list[str] | None = None) -> int:
    """``reelflow emulator --port P --data DIR --latency S``: serve until interrupted.

    ``reelflow emulator account --data DIR`` prints the account as JSON instead.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["account"]:
        return _account_command(argv[1:])
    args = _parser().parse_args(argv)
    if args.latency < 0:
        print("reelflow emulator: --latency must be >= 0", file=sys.stderr)
        return 2
    try:
        faults = _faults_from(args)
    except (OSError, ValueError) as err:  # pydantic's ValidationError is a ValueError
        print(f"reelflow emulator: faults: {err}", file=sys.stderr)
        return 2
    # Quiet by default: a parent that pipes stderr and never reads it must not block us.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    emulator = Emulator(args.data or _default_data_dir(), latency=args.latency,
                        host=args.host, port=args.port, credits=args.credits,
                        faults=faults, seed=args.seed, conformance=args.conformance,
                        output_url_ttl=args.output_url_ttl, image_long_side=args.image_size,
                        hdr_access=args.hdr_access, trust_ca=args.trust_ca)
    url = emulator.start()
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    except ValueError:  # not the main thread: the caller stops us another way
        pass
    print(f"reelflow emulator: {url} (data {emulator.data_dir.resolve()}, "
          f"latency {args.latency:g}s; Dream Machine API {url}, Agents API "
          f"{emulator.agents_base_url})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def account_report(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The account in ``data_dir`` per API: generations per model, files, credits."""
    account = Account(data_dir)
    per_model: dict[str, int] = {}
    spent = 0.0
    for record in account.records():
        per_model[record["model"]] = per_model.get(record["model"], 0) + 1
        spent += 0.0 if record.get("refunded") else record["cost"]
    state = account.stats()
    return {"data": str(Path(data_dir).resolve()),
            "dream_machine": {"created": state["created"], "generations": per_model,
                              "upscaled": state["upscaled"],
                              "audio_added": state["audio_added"],
                              "credits_spent": round(spent, 2),
                              "credits_refunded": state.get("refunded", 0.0),
                              "credit_balance": account.credit_balance()},
            "agents": AgentsAccount(data_dir).summary()}


def _account_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reelflow emulator account",
                                     description="Print an emulator account as JSON.")
    parser.add_argument("--data", type=Path, default=None,
                        help="account directory (default: $REELFLOW_HOME/emulator)")
    args = parser.parse_args(argv)
    data = args.data or _default_data_dir()
    if not (data / "state.json").is_file():
        print(f"reelflow emulator account: no emulator account in {data}", file=sys.stderr)
        return 2
    print(json.dumps(account_report(data), indent=2, sort_keys=True))
    return 0
