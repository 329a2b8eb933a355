"""reelflow's blocks meet Prefect's block standards, register, and drive a render by name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from reelflow.tasks import _clients
from reelflow.tasks.luma import LumaCredentials
from tests.helpers import TEST_KEY, write_shotlist
from tests.tasks.conftest import OfflineBlockSuite


class TestLumaCredentialsStandards(OfflineBlockSuite):
    @pytest.fixture
    def block(self):
        return LumaCredentials


def test_blocks_register_with_prefect_cli(prefect_api):
    result = subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m",
                             "reelflow.tasks.luma"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PREFECT_API_URL": prefect_api})
    assert result.returncode == 0, result.stderr
    assert "Luma Credentials" in result.stdout


def test_render_with_a_saved_credentials_block(tmp_path, home, emulator, prefect_api, monkeypatch):
    from reelflow.flows.render import render_sequence

    monkeypatch.delenv("LUMAAI_API_KEY", raising=False)
    monkeypatch.delenv("LUMAAI_BASE_URL", raising=False)
    LumaCredentials(api_key=SecretStr(TEST_KEY), base_url=emulator.base_url).save(
        "test-luma", overwrite=True)
    path = write_shotlist(tmp_path, [{"id": "blocky", "prompt": "Wooden blocks stacked into a tower",
                                      "resolution": "540p"}])
    before = emulator.created_count()

    report = render_sequence(str(path), luma_block="test-luma")

    assert emulator.created_count() - before == 1  # the block's endpoint, not a built-in emulator
    assert report.generated == 1


def test_a_saved_block_holds_both_apis_and_a_missing_key_is_refused(tmp_path, home, emulator,
                                                                     prefect_api):
    from reelflow.errors import CredentialsMissing
    from reelflow.flows.render import render_sequence

    LumaCredentials(api_key=SecretStr(TEST_KEY), base_url=emulator.base_url,
                    agents_api_key=SecretStr(TEST_KEY), agents_base_url=emulator.agents_base_url
                    ).save("test-luma-both", overwrite=True)
    LumaCredentials(api_key=SecretStr(TEST_KEY), base_url=emulator.base_url).save(
        "test-luma-old", overwrite=True)
    path = write_shotlist(tmp_path, [
        {"id": "old", "prompt": "Wooden blocks stacked into a tower", "resolution": "540p"},
        {"id": "new", "model": "ray-3.2", "prompt": "The tower topples", "resolution": "360p"}])
    dream, agents = emulator.created_count(), emulator.agents_created_count()

    with pytest.raises(CredentialsMissing, match="LUMA_AGENTS_API_KEY"):
        render_sequence(str(path), luma_block="test-luma-old")
    assert (emulator.created_count(), emulator.agents_created_count()) == (dream, agents)

    report = render_sequence(str(path), luma_block="test-luma-both")
    assert report.generated == 2
    assert (emulator.created_count() - dream, emulator.agents_created_count() - agents) == (1, 1)


# -- one client cache policy (tasks/_clients.py): an SDK client per credentials, as prefect-aws
# caches one per credentials block, and no secret in the cache's keys
def test_luma_clients_are_cached_per_credentials_with_no_secret_in_the_key():
    secret = "sk-cache-test-" + "x" * 20
    one = LumaCredentials(api_key=SecretStr(secret), base_url="http://127.0.0.1:9/dm",
                          agents_api_key=SecretStr(secret), agents_base_url="http://127.0.0.1:9/v1")
    same = LumaCredentials(api_key=SecretStr(secret), base_url="http://127.0.0.1:9/dm",
                           agents_api_key=SecretStr(secret), agents_base_url="http://127.0.0.1:9/v1")
    assert one.get_client() is same.get_client()
    assert one.get_agents_client() is same.get_agents_client()
    assert one.get_client() is not one.get_agents_client()
    other_key = one.model_copy(update={"api_key": SecretStr(secret + "2")})
    other_url = one.model_copy(update={"base_url": "http://127.0.0.1:10/dm"})
    assert other_key.get_client() is not one.get_client()
    assert other_url.get_client() is not one.get_client()
    assert one.get_client().base_url.host == "127.0.0.1"
    assert secret not in repr(list(_clients._CACHE)) and secret not in repr(one)


def test_the_fingerprint_tells_secrets_apart_and_is_not_the_secret():
    assert _clients.fingerprint("a", "b") == _clients.fingerprint("a", "b")
    assert _clients.fingerprint("a", "b") != _clients.fingerprint("a", "c")
    assert "secret" not in _clients.fingerprint("secret") and len(_clients.fingerprint("x")) == 64
