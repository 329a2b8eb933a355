"""ClipStoreBlock and its nested S3Credentials: Prefect's block standards, S3 through the block's
own keys, blocks saved in the old flat shape, no leaked secret."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from reelflow.tasks import _clients, _s3
from reelflow.tasks.store import ClipStore
from reelflow.tasks.store_block import ClipStoreBlock, S3Credentials, store_from_block
from tests.tasks.conftest import OfflineBlockSuite


class TestClipStoreBlock(OfflineBlockSuite):
    @pytest.fixture
    def block(self):
        return ClipStoreBlock


class TestS3CredentialsStandards(OfflineBlockSuite):
    @pytest.fixture
    def block(self):
        return S3Credentials


@pytest.fixture()
def no_aws_env(monkeypatch, tmp_path):
    """No AWS_* variables and no credential files: only the block can supply keys."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("REELFLOW_STORE", "REELFLOW_S3_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup here
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def _keys(server, secret: str | None = None) -> S3Credentials:
    return S3Credentials(aws_access_key_id=SecretStr(server.access_key),
                         aws_secret_access_key=SecretStr(secret or server.secret_key))


def _s3_block(server, prefix: str, **overrides) -> ClipStoreBlock:
    fields = dict(bucket_name=server.bucket, bucket_folder=prefix, endpoint_url=server.endpoint_url,
                  region_name=server.region, credentials=_keys(server))
    return ClipStoreBlock(**{**fields, **overrides})


def test_saved_block_stores_through_s3_with_its_own_keys(s3_server, home, prefect_api, no_aws_env,
                                                         tmp_path):
    assert not _s3.credentials_available()  # the environment alone could not sign anything
    prefix = f"t-{secrets.token_hex(4)}/clips"
    _s3_block(s3_server, prefix).save("test-clip-store", overwrite=True)

    store = store_from_block("test-clip-store")
    clip = tmp_path / "clip.mp4"
    data = secrets.token_bytes(200_000)
    clip.write_bytes(data)
    sha = store.put_file(clip, keep_source=True)

    key = f"{prefix}/{sha[:2]}/{sha}.mp4"
    assert store.is_s3 and store.object_key(sha) == key
    assert s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == data
    assert store.root == home / "clips"  # root defaults to REELFLOW_HOME/clips
    # a fresh cache reads it back from S3, still signed with the block's keys
    fresh = store.model_copy(update={"root": tmp_path / "cache2"})
    assert fresh.fetch(sha).read_bytes() == data
    assert store.presigned_url(sha).startswith(s3_server.endpoint_url)
    store.require_remote_urls(loopback_ok=False)  # the block's keys count as credentials


def test_secret_key_is_never_written_dumped_or_shown(s3_server, home, prefect_api, no_aws_env,
                                                     tmp_path, caplog):
    caplog.set_level("DEBUG")
    prefix = f"t-{secrets.token_hex(4)}/clips"
    _s3_block(s3_server, prefix).save("test-clip-store-secret", overwrite=True)
    store = store_from_block("test-clip-store-secret")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(secrets.token_bytes(50_000))
    sha = store.put_file(clip)
    store.model_copy(update={"root": home / "clips2"}).has(sha)
    (home / "store.json").write_text(store.model_dump_json())  # what a Prefect result would hold

    secret = s3_server.secret_key
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) >= 3
    assert [p for p in files if secret.encode() in p.read_bytes()] == []
    shown = [repr(store), str(store), store.model_dump_json(), repr(store.model_dump()),
             repr(store._credentials), repr(list(_clients._CACHE)),
             repr(ClipStoreBlock.load("test-clip-store-secret"))]
    assert [text for text in shown if secret in text or s3_server.access_key in text] == []
    # botocore's DEBUG log names the access key id (it is in every signed request), never the secret
    assert "Authorization" in caplog.text and secret not in caplog.text
    assert ClipStore.model_validate_json(store.model_dump_json())._credentials is None


def test_clients_are_cached_per_credentials(s3_server, home, no_aws_env):
    prefix = "cache-test"
    block = _s3_block(s3_server, prefix)
    assert block.get_store()._client() is block.get_store()._client()
    other = _s3_block(s3_server, prefix, credentials=_keys(s3_server, "another-secret"))
    assert other.get_store()._client() is not block.get_store()._client()


def test_local_block_and_no_block(home, tmp_path, monkeypatch):
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    local = ClipStoreBlock(root=str(tmp_path / "mine")).get_store()
    assert not local.is_s3 and local.root == tmp_path / "mine"
    assert store_from_block(None) == ClipStore(root=home / "clips")
    monkeypatch.setenv("REELFLOW_STORE", "s3://env-bucket/p")
    assert store_from_block(None).bucket_name == "env-bucket"  # the environment stays the default


def test_half_a_key_pair_and_s3_settings_without_bucket_are_refused():
    with pytest.raises(ValidationError, match="give both aws_access_key_id and aws_secret_acc"):
        ClipStoreBlock(bucket_name="b", aws_access_key_id=SecretStr("AKIA"))
    with pytest.raises(ValidationError, match="bucket_name is empty"):
        ClipStoreBlock(endpoint_url="http://127.0.0.1:9000")


def test_missing_block_name_fails_loudly(prefect_api):
    with pytest.raises(ValueError, match="no-such-store"):
        store_from_block("no-such-store")


def test_block_registers_with_prefect_cli(prefect_api):
    result = subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m",
                             "reelflow.tasks.store_block"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PREFECT_API_URL": prefect_api})
    assert result.returncode == 0, result.stderr
    assert "Clip Store" in result.stdout


def test_render_with_a_saved_store_block(tmp_path, home, luma_env, s3_server, prefect_api, monkeypatch):
    from reelflow.flows.render import render_sequence
    from reelflow.tasks.store_block import ClipStoreBlock
    from tests.helpers import write_shotlist

    for name in [n for n in __import__("os").environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    ClipStoreBlock(bucket_name=s3_server.bucket, bucket_folder="render-block",
                   endpoint_url=s3_server.endpoint_url, region_name=s3_server.region,
                   credentials=_keys(s3_server)).save("render-store", overwrite=True)
    path = write_shotlist(tmp_path, [{"id": "bucket", "prompt": "A bucket of shells on the sand",
                                      "resolution": "540p"}])

    report = render_sequence(str(path), store_block="render-store")

    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_server.bucket, Prefix="render-block/").get("Contents", [])]
    assert f"render-block/{report.shot_results[0].sha256[:2]}/{report.shot_results[0].sha256}.mp4" in keys


def _save_flat(name: str, data: dict) -> None:
    """Save a Clip Store block document in the old flat shape, as an older reelflow saved it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate

    ClipStoreBlock.register_type_and_schema()
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug(ClipStoreBlock.get_block_type_slug())
        schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
        for old in client.read_block_documents_by_type(block_type.slug):
            if old.name == name:
                client.delete_block_document(old.id)
        client.create_block_document(BlockDocumentCreate(
            name=name, data=data, block_schema_id=schema.id, block_type_id=block_type.id))


def test_a_block_saved_in_the_old_flat_shape_loads_with_nested_credentials(
        s3_server, home, prefect_api, no_aws_env, tmp_path):
    prefix = f"t-{secrets.token_hex(4)}/flat"
    _save_flat("test-flat-store", {
        "root": None, "bucket_name": s3_server.bucket, "bucket_folder": prefix,
        "endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region,
        "aws_access_key_id": s3_server.access_key, "aws_secret_access_key": s3_server.secret_key})
    _save_flat("test-flat-local", {"root": str(tmp_path / "flat-local"), "bucket_name": None,
                                   "aws_access_key_id": None, "aws_secret_access_key": None})

    block = ClipStoreBlock.load("test-flat-store")
    assert block.credentials.aws_secret_access_key.get_secret_value() == s3_server.secret_key
    assert "aws_access_key_id" not in block.model_dump()  # the keys are nested now
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(secrets.token_bytes(10_000))
    sha = block.get_store().put_file(clip, keep_source=True)  # signed with the old block's keys
    assert s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{prefix}/{sha[:2]}/{sha}.mp4")
    local = ClipStoreBlock.load("test-flat-local")
    assert local.credentials is None and local.get_store().root == tmp_path / "flat-local"

    block.save("test-flat-store", overwrite=True)  # saved again: the new, nested shape
    again = ClipStoreBlock.load("test-flat-store")
    assert again.credentials.boto3_kwargs() == block.credentials.boto3_kwargs()
    assert s3_server.secret_key not in repr(again)


def test_store_location_fields_are_defined_once():
    from reelflow.tasks.store import StoreLocation

    location = set(StoreLocation.model_fields)
    assert location == {"bucket_name", "bucket_folder", "endpoint_url", "region_name"}
    assert location <= set(ClipStore.model_fields) and location <= set(ClipStoreBlock.model_fields)
    assert set(ClipStoreBlock.model_fields) - location == {"root", "credentials"}
    assert ClipStoreBlock(bucket_name="b", bucket_folder="/p/").get_store().bucket_folder == "p"
