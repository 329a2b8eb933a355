"""Configuration that comes from the environment, in one place.

Every environment variable reelflow reads is a field of ``Settings`` (the table below), and
``settings()`` is the one place they are read: no other module of the package touches
``os.environ`` (tests/test_config.py fails if one does; the emulator keeps its own). Each
call takes a fresh, consistent snapshot, because the environment changes within a
process (``use_prefect`` exports the managed server's URL; tests set variables); reading
it is a handful of dictionary lookups.

The two writes are here too: ``apply_prefect_defaults`` and ``export_prefect_api_url`` set
variables that this process's Prefect (and the flow-run processes it starts) read;
``environment_without`` is the copy a child process is started with.

Built-in defaults are named constants here, as httpx keeps its own in ``_config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENCODE_MEMORY_MB",
    "ENV",
    "PREFECT_DEFAULTS",
    "Settings",
    "apply_prefect_defaults",
    "encode_memory_mb",
    "environment_without",
    "export_prefect_api_url",
    "reelflow_home",
    "s3_mirror_root",
    "settings",
]

#: How many shots generate at once; the Luma API allows about 10 in progress per account.
DEFAULT_CONCURRENCY = 10

#: What the x264 encodes running at once may hold together (MB, estimated from the frame
#: size: about 300 MB each at 1080p, 180 at 720p, 130 at 540p, measured). One always runs.
DEFAULT_ENCODE_MEMORY_MB = 400

#: Prefect settings reelflow applies unless the user set them: the default ephemeral
#: start-up timeout (20 s) fails on a fresh PREFECT_HOME on small machines, and the
#: telemetry heartbeat logs "database is locked" against SQLite.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

#: Settings field -> the environment variables it is read from (the first one set wins).
ENV: dict[str, tuple[str, ...]] = {
    "home": ("REELFLOW_HOME",),
    "xdg_cache_home": ("XDG_CACHE_HOME",),
    # Luma: the two SDKs' own variables
    "luma_api_key": ("LUMAAI_API_KEY",),
    "luma_base_url": ("LUMAAI_BASE_URL",),
    "agents_api_key": ("LUMA_AGENTS_API_KEY",),
    "agents_base_url": ("LUMA_BASE_URL",),
    "emulator_latency": ("REELFLOW_EMULATOR_LATENCY",),
    "sending_live": ("REELFLOW_SENDING_LIVE_S",),
    "prices": ("REELFLOW_PRICES",),
    "ffmpeg": ("REELFLOW_FFMPEG",),
    "encode_memory": ("REELFLOW_ENCODE_MEMORY_MB",),
    # the clip store and S3 (boto3 reads its own chain as well; these name the client)
    "store": ("REELFLOW_STORE",),
    "s3_endpoint_url": ("REELFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "aws_profile": ("AWS_PROFILE",),
    # distributed renders and production
    "distribute": ("REELFLOW_DISTRIBUTE",),
    "stale": ("REELFLOW_STALE_S",),
    "list_lease": ("REELFLOW_LIST_LEASE_S",),
    "sweep_every": ("REELFLOW_SWEEP_S",),
    "flow_stale": ("REELFLOW_FLOW_STALE_S",),
    # Prefect
    "prefect_home": ("PREFECT_HOME",),
    "prefect_api_url": ("PREFECT_API_URL",),
    "prefect_mode": ("REELFLOW_PREFECT",),
    "server_idle": ("REELFLOW_SERVER_IDLE",),
}

#: Fields whose values are secrets: SecretStr, never shown, masked in the CLI's lines.
_SECRET_FIELDS = ("luma_api_key", "agents_api_key", "aws_access_key_id", "aws_secret_access_key",
                  "aws_session_token")


class Settings(BaseModel):
    """The environment as reelflow reads it: each field is the first of its ``ENV`` variables
    that is set and not empty, else None. Secrets are ``SecretStr`` (masked in repr)."""

    model_config = ConfigDict(frozen=True)

    home: str | None = None
    xdg_cache_home: str | None = None
    luma_api_key: SecretStr | None = None
    luma_base_url: str | None = None
    agents_api_key: SecretStr | None = None
    agents_base_url: str | None = None
    emulator_latency: str | None = None
    sending_live: str | None = None
    prices: str | None = None
    ffmpeg: str | None = None
    encode_memory: str | None = None
    store: str | None = None
    s3_endpoint_url: str | None = None
    aws_region: str | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_profile: str | None = None
    distribute: str | None = None
    stale: str | None = None
    list_lease: str | None = None
    sweep_every: str | None = None
    flow_stale: str | None = None
    prefect_home: str | None = None
    prefect_api_url: str | None = None
    prefect_mode: str | None = None
    server_idle: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """The settings ``environ`` gives (``os.environ`` through ``settings()``)."""
        values = {}
        for field, names in ENV.items():
            value = next((environ[n] for n in names if environ.get(n)), None)
            if value is not None:
                values[field] = value
        return cls(**values)

    # -- derived values, with their defaults ---------------------------------------------------

    def has_luma_key(self) -> bool:
        """True when either Luma API key is set (else the embedded emulator serves both)."""
        return bool(self.luma_api_key or self.agents_api_key)

    def store_spec(self) -> str:
        """REELFLOW_STORE, stripped; "" selects the local store."""
        return (self.store or "").strip()

    def emulator_latency_s(self) -> float:
        """The embedded emulator's simulated dream time (REELFLOW_EMULATOR_LATENCY, default 2)."""
        return float(self.emulator_latency or "2")

    def distribute_default(self) -> bool:
        """REELFLOW_DISTRIBUTE=1 (true, yes) makes distribution the default for renders."""
        return (self.distribute or "").strip().lower() in ("1", "true", "yes")

    def seconds(self, field: str, default: float) -> float:
        """A number-of-seconds setting (``stale``, ``list_lease``, ``sending_live``)."""
        value = getattr(self, field)
        return float(value) if value else float(default)

    def prefect_home_dir(self) -> Path:
        """PREFECT_HOME, else ~/.prefect (not resolved)."""
        return Path(self.prefect_home or Path.home() / ".prefect")

    def secret_values(self) -> list[str]:
        """The secret values set (to mask in printed lines); never log this."""
        return [secret.get_secret_value() for field in _SECRET_FIELDS
                if (secret := getattr(self, field)) is not None]

    def aws_chain_parts(self) -> tuple[str, ...]:
        """What tells boto3's environment credentials apart (for a keyed fingerprint only)."""
        secret = lambda value: value.get_secret_value() if value else ""  # noqa: E731
        return (secret(self.aws_access_key_id), secret(self.aws_secret_access_key),
                secret(self.aws_session_token), self.aws_profile or "")


def settings() -> Settings:
    """The environment, read now (the one place reelflow reads it)."""
    return Settings.from_environ(os.environ)


def reelflow_home() -> Path:
    """Return REELFLOW_HOME, by default the per-user cache dir (``~/.cache/reelflow``)."""
    current = settings()
    if current.home:
        return Path(current.home).expanduser().resolve()
    cache = current.xdg_cache_home or os.path.join(Path.home(), ".cache")
    return Path(cache, "reelflow").resolve()


def encode_memory_mb() -> int:
    """REELFLOW_ENCODE_MEMORY_MB, else DEFAULT_ENCODE_MEMORY_MB: the budget of :func:`reelflow
    .tasks._ffmpeg.encode_slot` (a bad value is the default)."""
    try:
        return max(1, int(settings().encode_memory or ""))
    except ValueError:
        return DEFAULT_ENCODE_MEMORY_MB


def s3_mirror_root() -> Path:
    """Where shot lists from S3 are mirrored: ``REELFLOW_HOME/production/s3/<bucket>/<prefix>``.

    A list under it came from S3 and is untrusted: it may name only files in its own folder.
    """
    return reelflow_home() / "production" / "s3"


def apply_prefect_defaults(environ: dict[str, str] | None = None) -> None:
    """Set PREFECT_DEFAULTS in the environment where the user has not set them."""
    env = os.environ if environ is None else environ
    for name, value in PREFECT_DEFAULTS.items():
        env.setdefault(name, value)


def export_prefect_api_url(url: str) -> None:
    """Make ``url`` this process's Prefect API (and its child processes'): PREFECT_API_URL.

    Prefect reads it from the environment; the flow-run processes a runner starts inherit it.
    """
    os.environ["PREFECT_API_URL"] = url


def environment_without(names: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """A copy of the environment for a child process, without ``names`` and ``prefixes``."""
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith(prefixes)}
