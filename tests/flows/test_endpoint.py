"""The credentials in use decide the image-URL policy: a saved LumaCredentials block
(``--luma-block``) wins over the environment, both ways."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from reelflow.errors import StoreNotConfigured
from reelflow.flows.endpoint import api_is_local, image_url_resolver
from reelflow.flows.plan import make_plan
from reelflow.flows.shotlist import load_shotlist
from reelflow.tasks.luma import LumaCredentials
from reelflow.tasks.store import ClipStore
from tests.helpers import TEST_KEY, write_png, write_shotlist

REAL_API = "https://api.lumalabs.ai/dream-machine/v1"


def _keyframe_list(tmp_path):
    write_png(tmp_path / "dawn.png", 64, 36)
    return write_shotlist(tmp_path, [{"id": "dawn", "prompt": "The sun rises over a harbour",
                                      "resolution": "540p", "start": "dawn.png"}])


def test_environment_alone_decides_without_credentials(monkeypatch):
    monkeypatch.delenv("LUMAAI_API_KEY", raising=False)
    monkeypatch.delenv("LUMAAI_BASE_URL", raising=False)
    assert api_is_local()                                    # no key: the embedded emulator
    monkeypatch.setenv("LUMAAI_API_KEY", "k")
    assert not api_is_local()                                # a key: the real API
    monkeypatch.setenv("LUMAAI_BASE_URL", "http://127.0.0.1:9/dream-machine/v1")
    assert api_is_local()                                    # a key for a loopback emulator
    assert not api_is_local(LumaCredentials(api_key=SecretStr("k")))  # credentials win
    assert not api_is_local(LumaCredentials(api_key=SecretStr("k"), base_url=REAL_API))


def test_a_block_for_the_real_api_gets_no_loopback_urls_though_env_says_emulator(
        tmp_path, home, prefect_api, emulator, monkeypatch):
    from reelflow.flows.render import render_sequence

    for name in ("LUMAAI_API_KEY", "LUMAAI_BASE_URL", "LUMA_AGENTS_API_KEY", "REELFLOW_STORE"):
        monkeypatch.delenv(name, raising=False)       # the environment: the embedded emulator
    assert api_is_local()
    LumaCredentials(api_key=SecretStr("sk-real"), base_url=REAL_API).save("luma-real", overwrite=True)
    path = _keyframe_list(tmp_path)
    plan = make_plan(load_shotlist(path), "final")
    block = LumaCredentials.load("luma-real")

    with pytest.raises(StoreNotConfigured, match="local keyframe images must reach the Luma API"):
        image_url_resolver(plan, store=ClipStore.default(), credentials=block)
    before = emulator.created_count()
    with pytest.raises(StoreNotConfigured, match="local keyframe images must reach the Luma API"):
        render_sequence(str(path), luma_block="luma-real")   # refused before any spend
    assert emulator.created_count() == before


def test_a_block_for_a_loopback_emulator_gets_loopback_urls_though_env_says_real_api(
        tmp_path, home, prefect_api, emulator, monkeypatch):
    from reelflow.flows.render import render_sequence

    monkeypatch.setenv("LUMAAI_API_KEY", "sk-real")            # the environment: the real API
    monkeypatch.delenv("LUMAAI_BASE_URL", raising=False)
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    assert not api_is_local()
    LumaCredentials(api_key=SecretStr(TEST_KEY), base_url=emulator.base_url).save(
        "luma-loopback", overwrite=True)
    path = _keyframe_list(tmp_path)
    plan = make_plan(load_shotlist(path), "final")
    with pytest.raises(StoreNotConfigured):                    # the environment's policy
        image_url_resolver(plan, store=ClipStore.default())
    urls = image_url_resolver(plan, store=ClipStore.default(),
                              credentials=LumaCredentials.load("luma-loopback"))
    assert urls is not None and urls.loopback_ok
    urls.close()
    before = emulator.created_count()

    report = render_sequence(str(path), luma_block="luma-loopback")

    assert report.generated == 1 and emulator.created_count() - before == 1


def test_the_cli_leaves_the_url_check_to_the_block_credentials(tmp_path, home, prefect_api,
                                                               emulator):
    """`reelflow render --luma-block`: the environment's real-API key does not refuse a list
    whose block points at a loopback emulator (it did: the CLI checked by the environment)."""
    from tests.helpers import run_cli

    LumaCredentials(api_key=SecretStr(TEST_KEY), base_url=emulator.base_url).save(
        "luma-loopback-cli", overwrite=True)
    path = _keyframe_list(tmp_path)
    before = emulator.created_count()
    env = {"LUMAAI_API_KEY": "sk-real", "PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(home)}

    result = run_cli(["render", str(path), "--luma-block", "luma-loopback-cli",
                      "--out", str(tmp_path / "out.mp4")], env=env)

    assert result.returncode == 0, result.stderr
    assert emulator.created_count() - before == 1 and (tmp_path / "out.mp4").stat().st_size > 0
