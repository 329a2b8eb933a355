"""Luma generations as Prefect tasks: the credentials block and the one generate task.

Two APIs serve the models: the Dream Machine API (``lumaai``: ray-2, ray-flash-2) and
the Agents API (``luma-agents``: ray-3.2). The tasks here are the same for both; the
generation seam (``_generate`` with a provider per API, ``_providers``) does the rest.
The only paid step is the create call. It goes out once per request key, ever: the
key's ledger entry records the intent before the send and the generation id before
anything waits, creates go out with SDK retries off (neither API has an idempotency
key), and the wait, not the create, is what gets retried.

In the prefect-aws shape: ``LumaCredentials`` is the credentials block and hands out the
SDK clients, one per credentials (``reelflow.tasks._clients``); the task takes the block.
There is no separate submit, wait or download task: each would be a paid call, or half
of one, outside the ledger; ``generate_clip`` is all three, paid once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import lumaai
from prefect import get_run_logger, task
from prefect.blocks.abstract import CredentialsBlock
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency, rate_limit
from pydantic import Field, SecretStr

from reelflow.config import settings
from reelflow.spec import AGENTS_API
from reelflow.tasks import _generate
from reelflow.tasks._clients import cached_client, fingerprint
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._outputs import STILL, VIDEO
from reelflow.tasks._providers import provider_for
from reelflow.tasks.models import Clip, GenerationRequest
from reelflow.tasks.store import ClipStore

if TYPE_CHECKING:  # the Agents SDK loads on first use: a Dream Machine render never needs it
    import luma_agents

__all__ = [
    "AGENTS_CONCURRENCY_LIMIT",
    "AGENTS_RATE_LIMIT",
    "LumaCredentials",
    "generate_clip",
    "run_paid",
]

#: Names of the global limits the render flow creates (see reelflow.flows.observe): the
#: Dream Machine account's, and the Agents API account's (another account, other limits).
LUMA_CONCURRENCY_LIMIT = "reelflow-luma-generations"
LUMA_RATE_LIMIT = "reelflow-luma-creates"
AGENTS_CONCURRENCY_LIMIT = "reelflow-luma-agents-generations"
AGENTS_RATE_LIMIT = "reelflow-luma-agents-creates"
#: Seconds a generation slot outlives a holder that stopped renewing it (killed, lost).
SLOT_LEASE_S = 60


class LumaCredentials(CredentialsBlock):
    """Credentials and endpoints for both Luma APIs: the Dream Machine API (ray-2,
    ray-flash-2) and the Agents API (ray-3.2).

    Example:
        ```python
        from reelflow.tasks.luma import LumaCredentials
        credentials = LumaCredentials.load("BLOCK_NAME")
        dream_machine, agents = credentials.get_client(), credentials.get_agents_client()
        ```
    """

    _block_type_name = "Luma Credentials"
    _documentation_url = "https://docs.lumalabs.ai/docs/python-video-generation"  # type: ignore[assignment]

    api_key: SecretStr | None = Field(
        default=None, description="The Dream Machine API key (LUMAAI_API_KEY): ray-2, ray-flash-2.")
    base_url: str | None = Field(
        default=None, description="The Dream Machine API base URL (LUMAAI_BASE_URL).")
    agents_api_key: SecretStr | None = Field(
        default=None, description="The Agents API key (LUMA_AGENTS_API_KEY): ray-3.2.")
    agents_base_url: str | None = Field(
        default=None, description="The Agents API base URL (LUMA_BASE_URL).")

    @classmethod
    def from_env(cls) -> "LumaCredentials":
        """Credentials from LUMAAI_API_KEY / LUMAAI_BASE_URL and LUMA_AGENTS_API_KEY /
        LUMA_BASE_URL (the two SDKs' own variables)."""
        env = settings()
        return cls(api_key=env.luma_api_key, base_url=env.luma_base_url,
                   agents_api_key=env.agents_api_key, agents_base_url=env.agents_base_url)

    def get_client(self) -> lumaai.LumaAI:
        """A Dream Machine SDK client, cached per credentials (``reelflow.tasks._clients``)."""
        token = self.api_key.get_secret_value() if self.api_key else None
        return cached_client(("lumaai", self.base_url, fingerprint(token or "")),
                             lambda: lumaai.LumaAI(auth_token=token, base_url=self.base_url))

    def get_agents_client(self) -> luma_agents.Luma:
        """An Agents API SDK client, cached per credentials (``reelflow.tasks._clients``)."""
        token = self.agents_api_key.get_secret_value() if self.agents_api_key else None
        base_url = self.agents_base_url

        def build():
            import luma_agents  # loaded on first use: a Dream Machine render never needs it

            return luma_agents.Luma(auth_token=token, base_url=base_url)

        return cached_client(("luma-agents", base_url, fingerprint(token or "")), build)


def _limits(request: GenerationRequest) -> tuple[str, str]:
    """The (concurrency, rate) limits of the account serving ``request``."""
    if request.api == AGENTS_API:
        return AGENTS_CONCURRENCY_LIMIT, AGENTS_RATE_LIMIT
    return LUMA_CONCURRENCY_LIMIT, LUMA_RATE_LIMIT


@task(cache_policy=NO_CACHE, retries=0)
def generate_clip(request: GenerationRequest, *, shot_id: str = "clip",
                  credentials: LumaCredentials | None = None, store: ClipStore | None = None,
                  image_url: Callable[[Path], str] | None = None,
                  resubmits: int = _generate.DEFAULT_RESUBMITS) -> Clip:
    """Generate one clip, paying at most once per distinct request, and store it.

    Args:
        request: The normalised generation request; its cache key decides reuse, its
            model the API (ray-2/ray-flash-2: Dream Machine; ray-3.2: Agents).
        shot_id: Names the shot in logs and errors.
        credentials: Luma credentials; the SDKs' environment variables when omitted.
        store: The clip store; REELFLOW_HOME/clips when omitted.
        image_url: Dream Machine API: turns a local keyframe image into a URL the API can
            fetch (the Agents API uploads local inputs through its Files API).
        resubmits: How often a generic ("Job failed") failure is resubmitted.

    Returns:
        The stored Clip after every step (``paid`` is True when this call paid for any step).

    Raises:
        GenerationFailed, ModerationRefused, AnswerLost, DownloadError.

    Example:
        ```python
        @flow
        def one_clip():
            return generate_clip(GenerationRequest(model="ray-flash-2", prompt="A red kite"))
        ```
    """
    return run_paid(request, shot_id=shot_id, credentials=credentials, store=store,
                    image_url=image_url, resubmits=resubmits)


def run_paid(request: GenerationRequest, *, shot_id: str, credentials: LumaCredentials | None = None,
             store: ClipStore | None = None, image_url: Callable[[Path], str] | None = None,
             resubmits: int = _generate.DEFAULT_RESUBMITS):
    """A request through the seam under its account's global limits: a clip (every step),
    or a uni-1 still (``request.kind`` image: a ``_outputs.Still``). Nothing to pay or wait
    for takes no slot."""
    credentials = credentials or LumaCredentials.from_env()
    store = store or ClipStore.default()
    ledger = Ledger.for_store(store)  # shared beside the clips when the store is S3
    slots, creates = _limits(request)
    still = request.kind == "image"

    def run():
        provider = provider_for(request, credentials, image_url=image_url)
        before = lambda: rate_limit(creates, strict=False)  # noqa: E731
        if still:
            return _generate.generate_still(request, shot_id=shot_id, provider=provider,
                                            store=store, ledger=ledger, before_create=before)
        return _generate.generate(request, shot_id=shot_id, provider=provider, store=store,
                                  ledger=ledger, resubmits=resubmits, before_create=before)

    if ledger.is_stored(request.final_key(), store, STILL.suffix if still else VIDEO.suffix):
        return run()  # nothing to pay or wait for: no slot of the account's budget
    get_run_logger().info("Generating %s (%s, %s)", shot_id, request.model,
                          "still" if still else request.resolution)
    # Global limits shared by every run on every worker (created by the render flow; a
    # missing limit does not block, it only logs). The slot's lease is renewed while held
    # and expires a minute after a holder dies, so a crashed run cannot starve the others.
    with concurrency(slots, occupy=1, strict=False, lease_duration=SLOT_LEASE_S):
        return run()
