"""Cache keys stay the same bytes across refactors: a changed key re-encodes every cached
file, and a changed generation key pays again (test_agents_requests pins those)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reelflow.tasks._ffmpeg import content_key
from reelflow.tasks._verify import sha256_file
from reelflow.tasks.models import canonical_hash

VALUE = {"b": [1, 2.5, None, True], "a": "Café — 映画"}


def test_canonical_hash_is_the_sha256_of_sorted_compact_utf8_json():
    assert canonical_hash(VALUE) == "e7e2029fd1d96657fea40bc7ea0f9762e280b889bb3ea661af36511692d8c243"
    text = '{"a":"Café — 映画","b":[1,2.5,null,true]}'
    assert canonical_hash(VALUE) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_content_key_is_16_hex_of_ascii_json_and_names_paths_by_their_text():
    assert content_key({"b": 1, "a": "x"}) == "cdab067e9f3beb32"
    assert content_key({**VALUE, "p": Path("/x/y.mp4")}) == "27be657c28f7f748"
    assert content_key({"p": Path("/x/y.mp4")}) == content_key({"p": "/x/y.mp4"})
    assert content_key(VALUE) != canonical_hash(VALUE)[:16]  # \\u escapes: a different key


def test_sha256_file_reads_past_one_chunk(tmp_path):
    data = bytes(range(256)) * 9000  # > 2 MiB: three reads
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
