"""tasks/_loopback.py: the one loopback server behind the asset server and the file server:
only what its lookup resolves, byte ranges, and no token in a log line. The asset server's
scope rules are tests/tasks/test_store.py's, the file server's links test_file_server.py's."""

from __future__ import annotations

import logging

import httpx
import pytest

from reelflow.tasks._asset_server import asset_scope
from reelflow.tasks._loopback import LoopbackServer, byte_range


@pytest.fixture()
def served(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(bytes(range(256)) * 8)
    server = LoopbackServer(lambda request: (path, "a.mp4") if request == "/only" else None).start()
    yield server, path
    server.stop()


def test_serves_what_the_lookup_resolves_and_nothing_else(served):
    server, path = served
    whole = httpx.get(server.url + "/only")
    assert whole.status_code == 200 and whole.content == path.read_bytes()
    assert whole.headers["content-type"] == "video/mp4"       # from the served name
    assert httpx.head(server.url + "/only").headers["content-length"] == str(path.stat().st_size)
    for other in ("/only/", "/only?x=1", "/", "/" + str(path)):
        assert httpx.get(server.url + other).status_code == 404, other
    assert httpx.get(server.url + "/health").text == "ok"
    assert httpx.post(server.url + "/only").status_code == 501  # GET and HEAD only


def test_byte_ranges(served):
    server, path = served
    data = path.read_bytes()
    part = httpx.get(server.url + "/only", headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, data[10:20])
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert httpx.get(server.url + "/only", headers={"Range": "bytes=-5"}).content == data[-5:]
    assert httpx.get(server.url + "/only",
                     headers={"Range": f"bytes={len(data)}-"}).status_code == 416


@pytest.mark.parametrize(("header", "span"), [
    ("", (0, 99, False)), ("bytes=0-", (0, 99, True)), ("bytes=90-200", (90, 99, True)),
    ("bytes=-10", (90, 99, True)), ("bytes=-500", (0, 99, True)), ("items=1-2", (0, 99, False)),
    ("bytes=100-", None), ("bytes=50-40", None),
])
def test_byte_range_reads_the_header(header, span):
    assert byte_range(header, 100) == span


def test_an_asset_url_seeks_and_its_token_stays_out_of_the_log(tmp_path, caplog):
    image = tmp_path / "frame.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    name = "a" * 64 + ".png"
    caplog.set_level(logging.DEBUG, logger="reelflow.tasks._loopback")
    with asset_scope() as scope:
        url = scope.url_for(image, name)
        part = httpx.get(url, headers={"Range": "bytes=0-7"})
        assert (part.status_code, part.content) == (206, b"\x89PNG\r\n\x1a\n")
        assert part.headers["content-type"] == "image/png"
        token = url.split("/")[4]
    assert httpx.get(url).status_code == 404                   # the scope closed
    assert caplog.records and not [r for r in caplog.records if token in r.getMessage()]
