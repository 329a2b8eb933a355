"""Links to a render's deliverables that open from the Prefect UI in a browser.

Where the output was published to S3 (or the clips live there) the link is a presigned
URL. Locally, it is a loopback URL served by reelflow's file server when one is running
(``reelflow files``, or the one ``reelflow serve`` starts beside the Prefect server);
otherwise there is no link, only the path to copy and a hint saying how to get links.
A ``file://`` link is never made: a browser showing the UI over http does not open it.
"""

from __future__ import annotations

from pathlib import Path

from reelflow.flows.s3_lists import presigned_link

__all__ = ["clip_link", "output_link"]

#: What the summary says when local files have no link.
NO_SERVER_HINT = ("To open local files from the UI, run `reelflow files` (a loopback file "
                  "server; `reelflow serve` starts one too): later renders link them.")


def _served(path: Path) -> str | None:
    from reelflow.tasks.file_server import link_for

    return link_for(path)


def output_link(output: Path, output_uri: str | None) -> tuple[str | None, str | None]:
    """The output's link (or None) and, when there is none, a hint for getting one."""
    if output_uri:
        return presigned_link(output_uri), None
    link = _served(Path(output))
    return link, None if link else NO_SERVER_HINT


def clip_link(store, sha256: str) -> str | None:
    """A link to a stored clip: presigned on S3, served locally, or None."""
    if store.is_s3:
        return store.presigned_url(sha256)
    return _served(store.path_for(sha256))
