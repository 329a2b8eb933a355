"""Storyboard stills as a Prefect task: a uni-1 image made once, stored, then used as a frame.

A still is a ``GenerationRequest`` of an image model (``uni-1``, ``uni-1-max``): a prompt,
the aspect ratio of the shot it starts and reference images (``refs``: a character's
portrait, a product shot) that carry a person or an object through a sequence. Its
cache key holds each reference image's content hash (or URL), so changing one reference
image makes exactly the stills that use it anew, and with them (their keys hold the
still's key) the shots that start from them.

It goes through the generation seam like a clip (``_generate.generate_still``: ledger
record before the send, the id before the wait, one create per key, ever), its output a
PNG checked to decode and kept in the clip store (``_outputs.STILL``). A shot then uses
the stored image like a local keyframe image: a URL for ray-2 (S3 presigned or the
loopback asset server), a Files API upload for ray-3.2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from reelflow.tasks._outputs import Still
from reelflow.tasks.models import GenerationRequest
from reelflow.tasks.store import ClipStore

if TYPE_CHECKING:
    from reelflow.tasks.luma import LumaCredentials

__all__ = ["generate_still"]


@task(cache_policy=NO_CACHE, retries=0)
def generate_still(request: GenerationRequest, *, name: str = "still", credentials: LumaCredentials | None = None,
                   store: ClipStore | None = None) -> Still:
    """Generate one still (paid once per distinct request, ever) and store it.

    Args:
        request: The still (``model`` uni-1 or uni-1-max); its cache key decides reuse.
        name: Names the still in logs and errors (``<shot>.start``).
        credentials: ``LumaCredentials``; the SDKs' environment variables when omitted.
        store: The clip store; REELFLOW_HOME/clips when omitted.

    Example:
        ```python
        still = generate_still(GenerationRequest(model="uni-1", prompt="A lighthouse at dusk"))
        ```
    """
    from reelflow.tasks.luma import run_paid

    return run_paid(request, shot_id=name, credentials=credentials, store=store)
