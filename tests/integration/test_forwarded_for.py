"""A client cannot mint itself a fresh rate-limit bucket with an X-Forwarded-For header.

uvicorn (0.54, config.py) trusts X-Forwarded-For from 127.0.0.1 unless told otherwise, and
KServe 0.21 (protocol/rest/server.py, RESTServer.__init__) builds its uvicorn.Config with that
default. Behind Knative's queue-proxy (127.0.0.1 in the pod) or any local proxy, the header a
client wrote then became the peer address the IP-keyed rate limit counts by: a new value was a
new bucket. The servers now ignore the header unless FORWARDED_ALLOW_IPS names the proxies.
"""

from __future__ import annotations

import pytest

from tests.integration.adversarial import V1
from tests.integration.servers import HTTP, transformer_for

pytestmark = pytest.mark.integration


def test_a_spoofed_forwarded_for_does_not_get_a_fresh_bucket(predictor, redis, tmp_path):
    # 1 request per 10 s after a burst of 2: the calls below fit in 10 s however busy the machine is.
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_rps", "0.1",
                            "--rate_limit_burst", "2", "--access_log", "false").start()
    try:
        def call(headers: dict) -> int:
            return HTTP.post(front.url + V1, json={"instances": ["who am i"]}, headers=headers, timeout=10).status_code

        assert [call({}), call({})] == [200, 200]  # keyed by the peer's address: 127.0.0.1
        for spoofed in ("203.0.113.7", "198.51.100.1, 203.0.113.9"):
            assert call({"x-forwarded-for": spoofed}) == 429, spoofed
    finally:
        front.stop()
