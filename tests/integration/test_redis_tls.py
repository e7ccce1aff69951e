"""The cache over TLS with a password: rediss:// to a real redis-server with a certificate made here by openssl.

The chart's ``redis.tls`` runs our Redis like this (TLS only, password from the
Secret), and the transformer verifies the server against the CA named in the URL
(``?ssl_ca_certs=``). Skipped when openssl or a TLS-capable redis-server is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_client

from tests.integration.servers import RedisProcess, metric, transformer_for
from tests.integration.test_transformer import post_v1, unique

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-for-the-test"


def make_certificates(directory: Path) -> Path:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    return directory


class TlsRedis(RedisProcess):
    """redis-server with TLS only on the port the health check of RedisProcess cannot speak: checked here instead."""

    def __init__(self, log_path: Path, certs: Path):
        super().__init__(log_path)
        self.certs = certs

    def start(self) -> TlsRedis:
        command = ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--requirepass", PASSWORD,
                   "--tls-cert-file", str(self.certs / "server.crt"), "--tls-key-file", str(self.certs / "server.key"),
                   "--tls-ca-cert-file", str(self.certs / "ca.crt"), "--tls-auth-clients", "no"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.skip(f"this redis-server cannot serve TLS:\n{self.log_path.read_text()[-500:]}")
            try:
                if redis_client.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            except redis_client.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"TLS redis-server did not start:\n{self.log_path.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.certs / 'ca.crt'}"


@pytest.fixture
def tls_redis(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    server = TlsRedis(tmp_path / "redis.log", make_certificates(tmp_path)).start()
    yield server
    server.stop()


def test_the_cache_works_over_tls_with_a_password(predictor, tls_redis, tmp_path):
    # The TLS handshake of a new connection takes longer than the default 20 ms deadline on a busy machine.
    front = transformer_for(predictor, tls_redis, tmp_path / "transformer.log", "--cache_timeout_ms", "500").start()
    try:
        texts = unique(3)
        assert post_v1(front, texts).headers["x-cache"] == "miss"
        assert post_v1(front, texts).headers["x-cache"] == "hit"
        assert metric(front.url, "transformer_cache_errors_total", model_name="sentiment", operation="get") == 0
        assert PASSWORD not in front.log()
    finally:
        front.stop()


def test_a_wrong_password_or_plain_text_fails_open(predictor, tls_redis, tmp_path):
    wrong = tls_redis.url.replace(PASSWORD, "wr0ng-pw-x")
    plain = f"redis://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"  # no TLS: the server hangs up
    for i, url in enumerate([wrong, plain]):
        front = transformer_for(predictor, url, tmp_path / f"transformer-{i}.log", "--cache_timeout_ms", "500").start()
        try:
            texts = unique(2)
            assert [post_v1(front, texts).headers["x-cache"] for _ in range(2)] == ["miss", "miss"]
            assert metric(front.url, "transformer_cache_errors_total", model_name="sentiment", operation="get") >= 1
            assert "wr0ng-pw-x" not in front.log() and PASSWORD not in front.log()
        finally:
            front.stop()
