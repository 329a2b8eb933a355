"""One client cache policy (tasks/_clients.py): an SDK client per credentials, as prefect-aws
caches one per credentials block, and no secret in the cache's keys."""

from __future__ import annotations

from pydantic import SecretStr

from reelflow.tasks import _clients
from reelflow.tasks.luma import LumaCredentials


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
