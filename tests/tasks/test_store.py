"""The clip store: local and real S3 (SeaweedFS), presigned and loopback URLs, no leaked secrets."""

from __future__ import annotations

import hashlib
import http.client
import secrets
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from reelflow.errors import StoreNotConfigured
from reelflow.tasks import _s3
from reelflow.tasks._asset_server import asset_scope, asset_server
from reelflow.tasks._verify import record_path
from reelflow.tasks.store import ClipStore, image_url_for, require_remote_urls


def _png(path: Path, rgb: tuple[int, int, int] = (200, 30, 60), size: int = 8) -> Path:
    """A real (tiny, solid-colour) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\0" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def _blob(path: Path, size: int = 300_000) -> tuple[Path, bytes]:
    data = secrets.token_bytes(size)
    path.write_bytes(data)
    return path, data


@pytest.fixture()
def s3_env(s3_server, s3_credentials, home, monkeypatch):
    """REELFLOW_STORE pointing at a fresh prefix of the SeaweedFS bucket, creds in the env."""
    prefix = f"t-{secrets.token_hex(4)}/clips"
    monkeypatch.setenv("REELFLOW_STORE", f"s3://{s3_server.bucket}/{prefix}")
    return s3_server, prefix


def _keys(server, prefix: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=server.bucket, Prefix=prefix + "/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _count_puts(store: ClipStore) -> list[dict]:
    """Record the PutObject calls the store's own (cached) client sends."""
    calls: list[dict] = []
    store._client().meta.events.register("provide-client-params.s3.PutObject",
                                         lambda params, **_: calls.append(dict(params)))
    return calls


# -- local ------------------------------------------------------------------------------------

def test_local_round_trip(home, tmp_path, monkeypatch):
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    store = ClipStore.default()
    src, data = _blob(tmp_path / "a.mp4")

    sha = store.put_file(src)

    assert not store.is_s3 and store.root == home / "clips"
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path_for(sha) == home / "clips" / sha[:2] / f"{sha}.mp4"
    assert store.path_for(sha).read_bytes() == data and not src.exists()  # moved in
    assert store.has(sha) and not store.has("0" * 64)
    again, _ = _blob(tmp_path / "b.mp4")
    again.write_bytes(data)
    assert store.put_file(again) == sha and not again.exists()
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


def test_store_url_must_be_s3(home, monkeypatch):
    monkeypatch.setenv("REELFLOW_STORE", "/srv/clips")
    with pytest.raises(StoreNotConfigured, match="s3://bucket/prefix"):
        ClipStore.default()


def test_import_creates_no_client_and_loads_no_boto3():
    code = "import sys, reelflow.tasks.store; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- S3 ---------------------------------------------------------------------------------------

def test_s3_round_trip(s3_env, home, tmp_path):
    server, prefix = s3_env
    store = ClipStore.default()
    src, data = _blob(tmp_path / "clip.mp4")

    sha = store.put_file(src)

    assert store.is_s3 and store.endpoint_url == server.endpoint_url
    assert _keys(server, prefix) == [f"{prefix}/{sha[:2]}/{sha}.mp4"]
    body = server.client().get_object(Bucket=server.bucket, Key=f"{prefix}/{sha[:2]}/{sha}.mp4")
    assert body["Body"].read() == data
    assert store.path_for(sha).read_bytes() == data  # the local read-through cache
    assert store.has(sha) and not store.has("f" * 64)
    assert store.uri_for(sha) == f"s3://{server.bucket}/{prefix}/{sha[:2]}/{sha}.mp4"


def test_s3_put_twice_uploads_once(s3_env, tmp_path):
    server, prefix = s3_env
    store = ClipStore.default()
    puts = _count_puts(store)
    src, data = _blob(tmp_path / "one.mp4")
    twin = tmp_path / "two.mp4"
    twin.write_bytes(data)

    first, second = store.put_file(src), store.put_file(twin)
    fresh = ClipStore.default().model_copy(update={"root": tmp_path / "other-cache"})
    third = fresh.put_file(_blob(tmp_path / "three.mp4")[0])  # same client: counted too

    assert first == second
    assert len(puts) == 2 and puts[0]["IfNoneMatch"] == "*"  # one.mp4 and three.mp4 only
    assert len(_keys(server, prefix)) == 2 and third != first
    # the conditional write itself: a PUT over an existing key is refused (412) by S3
    key = store.object_key(first)
    assert _s3.put_if_absent(store._client(), server.bucket, key, fresh.path_for(third),
                             "video/mp4") is False
    assert server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read() == data


def test_s3_has_downloads_into_a_fresh_cache(s3_env, tmp_path):
    server, prefix = s3_env
    writer = ClipStore.default()
    sha = writer.put_file(_blob(tmp_path / "c.mp4")[0])
    data = writer.path_for(sha).read_bytes()
    reader = writer.model_copy(update={"root": tmp_path / "machine-2" / "clips"})

    assert not reader.path_for(sha).exists()
    assert reader.has(sha, download=False) and not reader.path_for(sha).exists()  # HEAD only
    assert reader.has(sha)
    assert reader.path_for(sha).read_bytes() == data
    assert reader.fetch(sha) == reader.path_for(sha)
    with pytest.raises(FileNotFoundError):
        reader.fetch("e" * 64)
    kept = {reader.path_for(sha), record_path(reader.path_for(sha))}
    leftovers = [p for p in reader.root.rglob("*") if p.is_file() and p not in kept
                 and p.suffix != ".lock"]  # this run's lock: held while the process lives
    assert leftovers == []  # no partial downloads left behind


def test_s3_object_that_does_not_match_its_hash_never_enters_the_cache(s3_env, tmp_path, caplog):
    """A damaged object reads as absent (one warning, after a second try in case the damage
    was in transit) and stays until the good bytes are in hand: the next put stores them
    over it, instead of every run failing on it."""
    server, prefix = s3_env
    store = ClipStore.default()
    good, data = _blob(tmp_path / "good.mp4")
    sha = hashlib.sha256(data).hexdigest()
    server.client().put_object(Bucket=server.bucket, Key=store.object_key(sha), Body=b"not it")

    assert not store.has(sha)
    assert not store.path_for(sha).exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "does not match its SHA-256" in warnings[0], warnings
    assert _keys(server, prefix) == [store.object_key(sha)]  # nothing deleted on a hunch

    assert store.put_file(good) == sha
    body = server.client().get_object(Bucket=server.bucket, Key=store.object_key(sha))["Body"]
    assert body.read() == data
    reader = store.model_copy(update={"root": tmp_path / "machine-2" / "clips"})
    assert reader.has(sha) and reader.path_for(sha).read_bytes() == data


def test_s3_clients_are_cached_per_settings(s3_env):
    store = ClipStore.default()
    assert store._client() is ClipStore.default()._client()
    other = store.model_copy(update={"region_name": "eu-west-1"})
    assert other._client() is not store._client()


def test_presigned_url_fetches_with_plain_httpx_then_expires(s3_env, tmp_path):
    server, _ = s3_env
    image = _png(tmp_path / "key.PNG")

    url = image_url_for(image)  # S3 configured: no loopback permission needed
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    signed_at = time.monotonic()  # long enough to be fetched on a loaded machine, then expire
    short = ClipStore.default().presigned_url(sha, suffix=".png", expires_s=4)

    response = httpx.get(url)
    assert response.status_code == 200 and response.content == image.read_bytes()
    assert urlsplit(url).path.endswith(f"/{sha[:2]}/{sha}.png") and image.exists()
    assert httpx.get(url.split("?")[0]).status_code == 403  # auth is enforced without a signature
    assert httpx.get(short).status_code == 200
    time.sleep(max(0.0, signed_at + 5.5 - time.monotonic()))
    assert httpx.get(short).status_code == 403


def test_s3_secret_never_written_under_reelflow_home(s3_env, home, tmp_path):
    server, _ = s3_env
    store = ClipStore.default()
    sha = store.put_file(_blob(tmp_path / "s.mp4")[0])
    url = store.image_url_for(_png(tmp_path / "s.png", (1, 2, 3)))
    store.model_copy(update={"root": home / "clips2"}).has(sha)
    (home / "store.json").write_text(store.model_dump_json())  # what a Prefect result would hold

    secret = server.secret_key.encode()
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) >= 4
    assert [p for p in files if secret in p.read_bytes()] == []
    assert server.secret_key not in url and server.secret_key not in repr(store)


def test_s3_without_credentials_is_refused_before_spend(s3_server, home, monkeypatch, tmp_path):
    monkeypatch.setenv("REELFLOW_STORE", f"s3://{s3_server.bucket}/nocreds")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup here
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(StoreNotConfigured, match="AWS_ACCESS_KEY_ID"):
        require_remote_urls(loopback_ok=False)


# -- URLs for local stores ----------------------------------------------------------------------

def test_local_store_with_real_api_raises_naming_reelflow_store(home, tmp_path, monkeypatch):
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    image = _png(tmp_path / "k.png")

    with pytest.raises(StoreNotConfigured) as raised:
        image_url_for(image)
    with pytest.raises(StoreNotConfigured):
        require_remote_urls(loopback_ok=False)

    message = str(raised.value)
    assert "REELFLOW_STORE=s3://bucket/prefix" in message and "AWS_ACCESS_KEY_ID" in message
    assert not (home / "clips").exists()  # refused before touching anything
    require_remote_urls(loopback_ok=True)  # the embedded emulator can use loopback


def _raw_get(url_base: str, path: str) -> int:
    """GET a raw path (no client-side normalisation of '..')."""
    parts = urlsplit(url_base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_loopback_asset_server_serves_only_this_renders_files(home, tmp_path, monkeypatch):
    """Issue 10, section 7: any local process could fetch any store file by its hash. Now a
    render's scope (an unguessable path) serves only the files registered in it."""
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    image = _png(tmp_path / "frame.webp")  # the extension is what is kept
    other = _png(tmp_path / "other.png", rgb=(1, 2, 3))
    store = ClipStore.default()
    other_sha = store.put_file(other, suffix=".png", keep_source=True)   # in the store, unregistered
    (home / "clips" / "secret.txt").write_text("not served")

    with asset_scope() as render, asset_scope() as another_render:
        url = image_url_for(image, loopback_ok=True, assets=render)
        sha = hashlib.sha256(image.read_bytes()).hexdigest()
        base, token = asset_server().base_url, urlsplit(url).path.split("/")[2]
        assert url == f"{base}/r/{token}/{sha}.webp" and urlsplit(url).hostname == "127.0.0.1"
        assert len(token) >= 43                                   # 256 random bits
        response = httpx.get(url)
        assert response.status_code == 200 and response.content == image.read_bytes()
        assert response.headers["content-type"] == "image/webp" and image.exists()
        assert httpx.head(url).status_code == 200
        assert image_url_for(image, loopback_ok=True, assets=render) == url  # one server, one URL
        other_url = store.presigned_url(other_sha, suffix=".png", assets=another_render)
        assert other_url.split("/")[4] != token and httpx.get(other_url).status_code == 200
        guessed = "A" * len(token)
        for path in (f"/r/{token}/{other_sha}.png",                   # in the store, not this render's
                     f"/r/{guessed}/{sha}.webp", f"/clips/{sha}.webp",  # guessed paths
                     f"/clips/{sha[:2]}/{sha}.webp", f"/r/{token}/../{sha}.webp",
                     f"/r/{token}/%2e%2e/secret.txt", f"/r/{token}/secret.txt", f"/r/{token}/",
                     f"/r/{token}/{sha}.png", f"/r/{token}/{sha.upper()}.webp", "/", "/r/"):
            assert _raw_get(base, path) == 404, path
    assert _raw_get(base, urlsplit(url).path) == 404                # closed with its render
    assert _raw_get(base, urlsplit(other_url).path) == 404
    with pytest.raises(ValueError, match="AssetScope"):           # no scope, no loopback URL
        store.presigned_url(sha, suffix=".webp")
    with pytest.raises(FileNotFoundError), asset_scope() as render:
        store.presigned_url("1" * 64, suffix=".png", assets=render)
    with pytest.raises(ValueError, match="keyframe images"):
        image_url_for(tmp_path / "notes.txt", loopback_ok=True)