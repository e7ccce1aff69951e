"""The chart's Redis command, run for real: the password stays off the command line and the cache's
user can do only what the transformer does (issue 26, hygiene)."""

from __future__ import annotations

import subprocess
import time

import psutil
import pytest
import redis as redis_client

from harness.processes import free_port
from tests.chart.helm import by_kind, render

pytestmark = pytest.mark.integration

PASSWORD = "p4ssw0rdFromTheChartSecret0123456"


def redis_container() -> dict:
    deployment = next(d for d in by_kind(render(), "StatefulSet") if d["metadata"]["name"] == "demo-redis")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_the_rendered_redis_command_keeps_the_password_off_its_command_line(tmp_path):
    container = redis_container()
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    port = free_port()
    script = container["args"][0].replace("/run/secrets/redis/password", str(password_file))
    script = script.replace("user default off", f"user default off\nport {port}\nbind 127.0.0.1")
    process = subprocess.Popen([*container["command"], script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cache = redis_client.Redis(host="127.0.0.1", port=port, username="tc", password=PASSWORD)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert cache.ping()
                break
            except redis_client.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start from the chart's command"
                time.sleep(0.1)
        command_line = " ".join(psutil.Process(process.pid).cmdline())  # exec: the shell became redis-server
        assert "redis-server" in command_line and PASSWORD not in command_line
        cache.set("tc:sentiment:v:p1:abc", b"\x00" * 8, ex=60)
        assert cache.mget(["tc:sentiment:v:p1:abc", "tc:other"]) == [b"\x00" * 8, None]
        for forbidden in (lambda: cache.set("other", 1), lambda: cache.keys("*"), lambda: cache.config_get("*"),
                          lambda: cache.flushall()):
            with pytest.raises(redis_client.exceptions.NoPermissionError):
                forbidden()
        with pytest.raises(redis_client.exceptions.AuthenticationError):  # the default user is off
            redis_client.Redis(host="127.0.0.1", port=port, password=PASSWORD).ping()
    finally:
        process.terminate()
        process.wait(10)
