"""Scheduled production: render every shot list in a folder, rebuilding only what changed.

    folder (or s3://bucket/prefix) ─▶ each *.yaml|*.yml|*.json ─▶ fingerprint
        unchanged fingerprint and output ─▶ skipped
        otherwise                        ─▶ render_sequence (a subflow) ─▶ state recorded

A list's fingerprint is the SHA-256 of its file bytes, the bytes of every local file it
references (keyframe images, music), the URLs it references, and the profile. The last
rendered fingerprint and the output's SHA-256 live in
``REELFLOW_HOME/production/<sha256 of the list's absolute path>.json`` (one entry per
profile), so a run skips a list only if neither its inputs nor its output have changed.
For an ``s3://`` folder with an S3 clip store, workers share that record instead
(flows/list_claims.py): a list is rendered once per change, by one worker at a time.
Bad lists are reported with their ``ShotListError`` lines and never stop the others.

Example:
    ```python
    from reelflow.flows.production import produce
    summary = produce("shotlists/", profile="draft")
    print(summary.rendered, summary.skipped, summary.failed)
    ```
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel

from reelflow.config import reelflow_home
from reelflow.errors import ReelflowError, ShotListError
from reelflow.flows.observe import run_name
from reelflow.flows.list_claims import ListClaims
from reelflow.flows.render import render_sequence
from reelflow.flows.s3_lists import mirror_s3_prefix
from reelflow.flows.shotlist import ImageRef, ShotList, load_shotlist
from reelflow.tasks.store import ClipStore, sha256_file

__all__ = ["Failure", "ProductionSummary", "Rendered", "fingerprint", "find_shotlists", "produce"]

#: The shot-list files a production folder is scanned for (not recursive).
SHOTLIST_SUFFIXES = (".yaml", ".yml", ".json")


class Rendered(BaseModel):
    """A list rendered by this run."""

    shotlist: str
    output: str
    #: Where the output was published when the folder is an S3 prefix, else None.
    output_uri: str | None = None
    generated: int
    cached: int
    cost_usd: float


class Failure(BaseModel):
    """A list that could not be rendered, with one line per problem."""

    shotlist: str
    problems: list[str]


class ProductionSummary(BaseModel):
    """What a production run did with each list of the folder."""

    folder: str
    profile: str
    rendered: list[Rendered] = []
    skipped: list[str] = []
    failed: list[Failure] = []

    @property
    def cost_usd(self) -> float:
        """What this run paid, over every rendered list."""
        return round(sum(r.cost_usd for r in self.rendered), 2)


def find_shotlists(folder: str | Path) -> list[Path]:
    """The shot-list files directly inside ``folder``, sorted by name.

    Raises:
        ReelflowError: the folder does not exist.
    """
    root = Path(folder).expanduser().absolute()
    if not root.is_dir():
        raise ReelflowError(f"production folder {str(root)!r} does not exist or is not a folder")
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SHOTLIST_SUFFIXES)


def _referenced(shotlist: ShotList) -> list[str]:
    """Every input the list points at, as ``path=sha`` or ``url=...`` lines, in a stable order."""
    refs = set()
    for shot in shotlist.shots:
        for frame in (shot.start, shot.end):
            if isinstance(frame, ImageRef) and frame.path is not None:
                refs.add(f"image {frame.path}={sha256_file(frame.path)}")
            elif isinstance(frame, ImageRef):
                refs.add(f"image url={frame.url}")
    if shotlist.output.music is not None:
        refs.add(f"music {shotlist.output.music}={sha256_file(shotlist.output.music)}")
    return sorted(refs)


def fingerprint(path: Path, shotlist: ShotList, profile: str) -> str:
    """SHA-256 over the list's bytes, the inputs it references and the profile."""
    digest = hashlib.sha256()
    digest.update(Path(path).read_bytes())
    for line in [*_referenced(shotlist), f"profile={profile}"]:
        digest.update(b"\0" + line.encode("utf-8"))
    return digest.hexdigest()


def _state_file(path: Path) -> Path:
    key = hashlib.sha256(str(Path(path).absolute()).encode("utf-8")).hexdigest()
    return reelflow_home() / "production" / f"{key}.json"


def _read_state(path: Path) -> dict:
    try:
        return json.loads(_state_file(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # never rendered, or a torn write: render again
        return {}


def _write_state(path: Path, profile: str, entry: dict) -> None:
    """Record a render atomically (a crash mid-write must not fake an up-to-date list)."""
    target = _state_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = _read_state(path)
    state.setdefault("profiles", {})[profile] = entry
    state["shotlist"] = str(Path(path).absolute())
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=2)
    os.replace(tmp, target)


def _up_to_date(path: Path, profile: str, print_: str) -> bool:
    """True when the recorded fingerprint matches and the recorded output is still intact."""
    entry = _read_state(path).get("profiles", {}).get(profile)
    if not entry or entry.get("fingerprint") != print_:
        return False
    output = Path(entry.get("output", ""))
    return output.is_file() and sha256_file(output) == entry.get("output_sha256")


def _render_one(path: Path, profile: str, budget_usd: float | None, summary: ProductionSummary,
                claims: ListClaims | None = None) -> None:
    """Skip, render or report one list; never raises for a problem with the list itself.

    With ``claims`` (an S3 folder and an S3 store: workers share them) the list is
    rendered only by the worker that claims it, once per fingerprint.
    """
    log = get_run_logger()
    claimed = report = None
    try:
        shotlist = load_shotlist(path)
        print_ = fingerprint(path, shotlist, profile)
        verdict = claims.claim(path.name, print_) if claims else None
        if verdict in ("unchanged", "busy") or (not claims and _up_to_date(path, profile, print_)):
            log.info("%s: %s, skipped", path.name,
                     "being rendered by another worker" if verdict == "busy" else "unchanged")
            summary.skipped.append(str(path))
            return
        claimed = path.name if claims else None
        report = render_sequence(str(path), profile=profile, budget_usd=budget_usd)
    except ShotListError as exc:
        _fail(summary, path, exc.problems)
        return
    except ReelflowError as exc:
        _fail(summary, path, [f"{path.name}: {exc}"])
        return
    except Exception as exc:  # one list's crash must not stop the folder; it is reported
        _fail(summary, path, [f"{path.name}: {type(exc).__name__}: {exc}"])
        return
    finally:  # rendered or not, the claim goes; only a whole render records its fingerprint
        if claimed:
            claims.release(claimed, rendered=print_ if report is not None else None)
    _write_state(path, profile, {"fingerprint": print_, "output": str(report.output),
                                 "output_sha256": sha256_file(report.output)})
    summary.rendered.append(Rendered(shotlist=str(path), output=str(report.output),
                                     output_uri=report.output_uri,
                                     generated=report.generated, cached=report.cached,
                                     cost_usd=report.cost_usd))


def _fail(summary: ProductionSummary, path: Path, problems: list[str]) -> None:
    log = get_run_logger()
    for line in problems:
        log.error("%s", line)
    summary.failed.append(Failure(shotlist=str(path), problems=list(problems)))


def _run_name() -> str:
    folder = str(flow_run.parameters["folder"]).rstrip("/")
    return run_name("produce", folder.rsplit("/", 1)[-1] or folder)


def _publish(summary: ProductionSummary) -> None:
    rows = ([{"shot list": Path(r.shotlist).name, "result": "rendered", "output": r.output,
              "paid": r.generated, "cached": r.cached, "cost_usd": r.cost_usd} for r in summary.rendered]
            + [{"shot list": Path(s).name, "result": "skipped (unchanged)", "output": "",
                "paid": 0, "cached": 0, "cost_usd": 0.0} for s in summary.skipped]
            + [{"shot list": Path(f.shotlist).name, "result": "failed: " + "; ".join(f.problems),
                "output": "", "paid": 0, "cached": 0, "cost_usd": 0.0} for f in summary.failed])
    create_table_artifact(rows, key="reelflow-production",
                          description=f"Production of {summary.folder} ({summary.profile})")


@flow(name="produce", flow_run_name=_run_name, log_prints=False)
def produce(folder: str, profile: str = "final", budget_usd: float | None = None) -> ProductionSummary:
    """Render every shot list in a folder (or s3:// prefix) whose inputs or output changed.

    Args:
        folder: A local folder, or ``s3://bucket/prefix`` (mirrored under REELFLOW_HOME first,
            with every object below the prefix, so relative image and music paths resolve).
        profile: ``final`` or ``draft``, for every list.
        budget_usd: Per list: refuse a list whose render would pay more than this.

    Returns:
        A ProductionSummary: rendered lists (with cost), skipped lists, failed lists with reasons.

    Raises:
        ReelflowError: the folder does not exist (a bad list is reported, not raised).

    Example:
        ```python
        summary = produce("shotlists/", profile="draft")
        assert not summary.failed
        ```
    """
    log = get_run_logger()
    local = mirror_s3_prefix(folder) if folder.startswith("s3://") else Path(folder)
    paths = find_shotlists(local)
    log.info("Production of %s: %d shot lists, profile %s", folder, len(paths), profile)
    summary = ProductionSummary(folder=folder, profile=profile)
    claims = None
    if folder.startswith("s3://") and (store := ClipStore.default()).is_s3:
        claims = ListClaims(store, folder, profile)  # workers share who renders which list
    for path in paths:
        _render_one(path, profile, budget_usd, summary, claims)
    log.info("Production of %s: %d rendered ($%.2f), %d unchanged, %d failed", folder,
             len(summary.rendered), summary.cost_usd, len(summary.skipped), len(summary.failed))
    _publish(summary)
    return summary
