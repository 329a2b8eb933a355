"""Fixtures for the emulator tests: a fresh emulator per test and the real SDK on it."""

from __future__ import annotations

import luma_agents
import lumaai
import pytest

from reelflow.emulator import Emulator

TOKEN = "test"


@pytest.fixture()
def emu(tmp_path):
    """A zero-latency emulator on its own data dir."""
    with Emulator(tmp_path / "account", latency=0.0, image_long_side=256) as emulator:
        yield emulator


@pytest.fixture()
def client(emu) -> lumaai.LumaAI:
    """The unmodified SDK pointed at ``emu``; no retries, so failures show at once."""
    return lumaai.LumaAI(auth_token=TOKEN, base_url=emu.base_url, max_retries=0)



@pytest.fixture()
def agents(emu) -> luma_agents.Luma:
    """The unmodified luma-agents SDK pointed at ``emu``'s Agents API; no retries."""
    return luma_agents.Luma(auth_token=TOKEN, base_url=emu.agents_base_url, max_retries=0)
