"""The commands that run no render: files, resolve, server, schema."""

from __future__ import annotations

import json
import time

from reelflow._cli_console import EXIT_FAILED, EXIT_OK, err

__all__ = ["cmd_files", "cmd_resolve", "cmd_schema", "cmd_server"]


def cmd_files(args) -> int:
    """Serve this REELFLOW_HOME's linked files until interrupted (Ctrl-C)."""
    from reelflow.tasks.file_server import FileServer, running_url

    if running_url():
        err(f"reelflow: a file server already serves this REELFLOW_HOME at {running_url()}")
        return EXIT_FAILED
    server = FileServer(args.port).start()
    print(f"Serving the files renders link to at {server.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def cmd_resolve(args) -> int:
    from reelflow.flows.endpoint import luma_credentials
    from reelflow.flows.resolve import resolve_send
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks.store import ClipStore

    store = ClipStore.default()
    if args.store_block:
        from reelflow.tasks.store_block import store_from_block

        store = store_from_block(args.store_block)
    credentials = luma_credentials(block=args.luma_block) if args.generation_id else None
    done = resolve_send(args.shot, generation_id=args.generation_id, resend=args.resend,
                        key=args.key, ledger=Ledger.for_store(store), credentials=credentials)
    what = (f"adopted generation {done.generation_id}: the next render waits on it and pays "
            "nothing" if done.generation_id else "cleared: the next render sends the create "
                                                 "again (and pays for it)")
    print(f"shot {done.shot_id}: {what} (ledger record {done.record})")
    return EXIT_OK


def cmd_server(args) -> int:
    from reelflow import _server

    configured = _server.configured_api_url()
    if configured and args.action != "stop":
        print(f"Prefect API: {configured} (PREFECT_API_URL or the active profile): reelflow "
              "starts no server of its own")
        return EXIT_OK
    if args.action == "stop":
        stopped = _server.stop_server()
        print(f"stopped the Prefect server at {stopped.ui_url} (pid {stopped.server_pid})"
              if stopped else "no reelflow Prefect server is running")
        return EXIT_OK
    if args.action == "start":
        state, started = _server.ensure_server(err, port=args.port, idle_s=args.idle)
    else:
        state, started = _server.running_server(), False
        if state is None:
            print("no reelflow Prefect server is running (render, compare or watch starts one)")
            return 3
    idle = _server.duration(max(0.0, time.time() - _server.last_used(_server.server_dir())))
    print(f"{'started' if started else 'running'}: Prefect UI {state.ui_url} (API {state.api_url}); "
          f"pid {state.server_pid}, watchdog {state.pid}; unused for {idle}, stops after "
          f"{_server.duration(state.idle_s)}; PREFECT_HOME {state.prefect_home}; "
          f"log {_server.server_dir() / 'server.log'}")
    return EXIT_OK


def cmd_schema(_args) -> int:
    from reelflow.flows.shotlist import shotlist_json_schema

    print(json.dumps(shotlist_json_schema(), indent=2))
    return EXIT_OK
