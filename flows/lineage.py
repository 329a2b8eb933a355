"""The sequence and its clips as Prefect assets, so the UI's lineage graph shows which
clips feed which sequence.

One materializing task per render (``lineage-<sequence>``) materializes the output (its
``s3://`` URI when published, else its ``file://`` path) with every generated clip it
was cut from (their clip-store URIs) as upstream assets, and attaches the render's cost,
length and counts as materialization metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect.assets import Asset, AssetProperties, add_asset_metadata, materialize
from prefect.cache_policies import NO_CACHE

from reelflow.flows.observe import step_name
from reelflow.tasks.store import ClipStore

__all__ = ["asset_key", "record_lineage"]

#: Characters Prefect refuses in an asset key (a file URI may %-encode a space, say).
_RESTRICTED = re.compile(r"[\s#?&%\"'<>\[\]{}|\\^`\x00]")
_MAX_KEY = 512


def asset_key(uri: str) -> str:
    """``uri`` as a valid Prefect asset key: restricted characters become ``_``."""
    return _RESTRICTED.sub("_", uri)[:_MAX_KEY]


def _materialized(key: str, metadata: dict) -> str:
    add_asset_metadata(key, metadata)
    return key


def record_lineage(report, store: ClipStore, sequence: str, prompts: dict[str, str]) -> str:
    """Materialize the render's output as an asset with its clips upstream; return its key."""
    output_key = asset_key(report.output_uri or Path(report.output).resolve().as_uri())
    clips = {}
    for shot in report.shot_results:
        if shot.kind == "generate" and shot.sha256 and shot.sha256 not in clips:
            clips[shot.sha256] = Asset(key=asset_key(store.uri_for(shot.sha256)), properties=AssetProperties(
                name=f"{sequence}/{shot.id}", description=(prompts.get(shot.id) or "")[:500]))
    output = Asset(key=output_key, properties=AssetProperties(
        name=sequence, description=f"reelflow render of {sequence} ({report.profile})"))
    task = materialize(output, asset_deps=list(clips.values()), by="reelflow",
                       task_run_name=step_name("lineage", sequence), cache_policy=NO_CACHE,
                       persist_result=False)(_materialized)
    return task(output_key, {"cost_usd": report.cost_usd, "duration_s": report.duration_s,
                             "shots": report.shots, "generated": report.generated,
                             "cached": report.cached, "profile": report.profile})
