"""The emulator's optional render cache: the same request in a fresh account gives the same
bytes without ffmpeg, a damaged entry is rendered again, and without the setting nothing is kept."""

from __future__ import annotations

import hashlib

import lumaai
import pytest

from reelflow.emulator import Emulator
from reelflow.emulator.clip_cache import ENV, memo
from tests.emulator.support import download, wait_completed
from tests.helpers import TEST_KEY


def _clip(data, tmp_path, name: str) -> bytes:
    with Emulator(data, latency=0.0) as emu:
        client = lumaai.LumaAI(auth_token=TEST_KEY, base_url=emu.base_url)
        created = client.generations.create(model="ray-2", prompt="A kite over a beach",
                                            resolution="540p", duration="5s")
        done = wait_completed(client, created.id)
        return download(done.assets.video, tmp_path / name).read_bytes()


def test_a_fresh_account_reuses_the_render_and_a_damaged_entry_is_rendered_again(
        tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(ENV, str(cache))
    first = _clip(tmp_path / "a", tmp_path, "a.mp4")
    [entry] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    kept = sorted(entry.glob("*.mp4"))
    assert len(kept) == 1 and hashlib.sha256(kept[0].read_bytes()).digest() == \
        hashlib.sha256(first).digest()

    assert _clip(tmp_path / "b", tmp_path, "b.mp4") == first          # from the cache

    damaged = bytearray(kept[0].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    kept[0].write_bytes(bytes(damaged))
    assert _clip(tmp_path / "c", tmp_path, "c.mp4") == first          # rendered again
    assert kept[0].read_bytes() == first                               # and the entry mended


def test_memo_makes_once_per_key_and_not_at_all_without_the_setting(tmp_path, monkeypatch):
    calls = []

    def make(out):
        def run():
            calls.append(out.name)
            out.write_bytes(b"frame:" + out.name.encode())
        return run

    monkeypatch.delenv(ENV, raising=False)
    assert memo({"x": 1}, [], [tmp_path / "n.bin"], make(tmp_path / "n.bin")) is False
    assert not (tmp_path / "cache").exists() and calls == ["n.bin"]

    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    source = tmp_path / "in.png"
    source.write_bytes(b"one")
    out = tmp_path / "o.bin"
    assert memo({"x": 1}, [source], [out], make(out)) is False
    out.unlink()
    assert memo({"x": 1}, [source], [out], make(out)) is True
    assert out.read_bytes() == b"frame:o.bin" and calls == ["n.bin", "o.bin"]
    source.write_bytes(b"two")                                         # inputs are keyed by content
    assert memo({"x": 1}, [source], [out], make(out)) is False
    assert memo({"x": 2}, [source], [out], make(out)) is False
    assert calls == ["n.bin", "o.bin", "o.bin", "o.bin"]


@pytest.mark.parametrize("damage", ["manifest", "missing"])
def test_an_entry_without_its_manifest_or_files_is_a_miss(tmp_path, monkeypatch, damage):
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    out = tmp_path / "o.bin"
    calls = []

    def make():
        calls.append(1)
        out.write_bytes(b"bytes")

    memo("w", [], [out], make)
    [entry] = list((tmp_path / "cache").iterdir())
    if damage == "manifest":
        (entry / "manifest.json").write_text("{not json")
    else:
        (entry / "0.bin").unlink()
    assert memo("w", [], [out], make) is False and len(calls) == 2
    assert memo("w", [], [out], make) is True and len(calls) == 2
