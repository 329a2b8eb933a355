"""A ray-3.2 start frame given as an https URL is fetched by the (emulated) Agents API itself.

A loopback HTTPS server with a self-signed certificate serves the image; the emulator is
told to trust that certificate (``Emulator(trust_ca=...)``), as the real service trusts
public CAs. reelflow sends the URL as it is (nothing uploaded), the account fetches it once,
and the clip starts on the image.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import subprocess
import threading

import av
import luma_agents
import numpy as np
import pytest

from reelflow._binaries import ffmpeg_exe
from reelflow.emulator import Emulator
from tests.helpers import TEST_KEY, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")

RED = (230, 20, 20)


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, PEM files (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reelflow test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert_pem, key_pem


@pytest.fixture()
def https_images(tmp_path):
    """(base URL, CA file, GET counter) of a loopback HTTPS server of ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0x%02X%02X%02X:s=640x360" % RED, "-frames:v", "1",
                    str(www / "red.png")], check=True)
    cert, key = _self_signed(tmp_path)
    gets: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def do_GET(self):
            gets.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, gets
    server.shutdown()
    server.server_close()


def _first_frame_mean(path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    h = frame.shape[0]
    return frame[h // 3: 2 * h // 3].mean(axis=(0, 1))  # away from the emulator's labels


def test_https_start_frame_is_fetched_by_the_api_and_starts_the_clip(
        tmp_path, home, monkeypatch, https_images):
    from reelflow.flows.render import render_sequence

    base, ca, gets = https_images
    url = f"{base}/red.png"
    with Emulator(tmp_path / "account", trust_ca=ca) as emu:
        for name, value in (("LUMAAI_API_KEY", TEST_KEY), ("LUMAAI_BASE_URL", emu.base_url),
                            ("LUMA_AGENTS_API_KEY", TEST_KEY),
                            ("LUMA_BASE_URL", emu.agents_base_url)):
            monkeypatch.setenv(name, value)
        path = write_shotlist(tmp_path, [{"id": "door", "model": "ray-3.2", "resolution": "360p",
                                          "prompt": "The red door swings open", "start": url}])

        report = render_sequence(str(path))

        (record,) = emu.agents.records()
        assert record["request"]["video"]["start_frame"] == {"url": url}  # sent as a URL
        assert gets == ["/red.png"]  # fetched once, by the account (reelflow uploads nothing)
        assert sum(emu.agents.file_counts().values()) == 0
        clip = emu.agents.output_path(record["id"], 0, "mp4")
        assert np.abs(_first_frame_mean(clip) - RED).max() < 25  # the clip starts on the image
        assert np.abs(_first_frame_mean(report.output) - RED).max() < 25

        again = render_sequence(str(path))
        assert (again.generated, emu.agents_created_count(), gets) == (0, 1, ["/red.png"])

    # An account that does not trust the certificate cannot fetch it: the generation fails.
    with Emulator(tmp_path / "untrusting") as emu:
        client = luma_agents.Luma(auth_token=TEST_KEY, base_url=emu.agents_base_url)
        created = client.generations.create(prompt="p", model="ray-3.2",
                                            video={"resolution": "360p", "start_frame": {"url": url}})
        assert client.generations.get(created.id).failure_code == "corrupt_input"
        assert gets == ["/red.png"]  # the TLS handshake failed before any GET
