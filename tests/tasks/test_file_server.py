"""The loopback file server the Prefect UI's links point at: only linked files, byte ranges,
a lifetime its host controls, and no link while none runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest


@pytest.fixture()
def video(tmp_path):
    path = tmp_path / "my render.mp4"
    path.write_bytes(bytes(range(256)) * 40)
    return path


def test_no_server_no_link(home, video):
    from reelflow.tasks.file_server import link_for, running_url

    assert running_url() is None and link_for(video) is None


def test_serves_only_linked_files_with_ranges(home, video, tmp_path):
    from reelflow.tasks.file_server import FileServer, link_for, running_url

    server = FileServer(port=0).start()
    try:
        assert running_url() == server.url
        link = link_for(video)
        assert link.startswith(server.url + "/f/") and link.endswith("/my%20render.mp4")
        assert link_for(video) == link  # one file, one link
        whole = httpx.get(link)
        assert whole.status_code == 200 and whole.content == video.read_bytes()
        assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
        part = httpx.get(link, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == video.read_bytes()[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{video.stat().st_size}"
        tail = httpx.get(link, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == video.read_bytes()[-10:]
        assert httpx.get(link, headers={"Range": "bytes=999999-"}).status_code == 416
        other = tmp_path / "secret.txt"
        other.write_text("not linked")
        token = link.split("/")[-2]
        for path in (f"/f/{'0' * 32}/secret.txt", f"/f/{token}/../../secret.txt",
                     str(other), "/", f"/f/{token}"):
            assert httpx.get(server.url + path).status_code == 404, path
    finally:
        server.stop()
    assert running_url() is None and not (home / "links" / "server.json").exists()
    assert (home / "links" / "secret").stat().st_mode & 0o077 == 0


def test_reelflow_files_runs_until_interrupted(home, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.cli", "files", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        assert httpx.get(f"{url}/health").text == "ok"
        assert json.loads((home / "links" / "server.json").read_text())["url"] == url
        again = subprocess.run([sys.executable, "-m", "reelflow.cli", "files", "--port", "0"],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already serves" in again.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and not (home / "links" / "server.json").exists()
