"""transformer/cache.py ``pack_mget`` writes the bytes redis-py's ``pack_command("MGET", ...)`` writes."""

import pytest
from redis.asyncio.connection import Connection

from transformer.cache import pack_mget


@pytest.mark.parametrize("keys", [["tc:m:v:p1:0123abcd"], ["a", "b", "a"], ["tc:modèle:v:é😀"], ["k" * 10_000, "x"]],
                         ids=["one", "repeated", "unicode", "past redis-py's chunking"])
def test_the_same_bytes_as_redis_py(keys):
    connection = Connection()
    assert pack_mget(keys, connection.encoder) == b"".join(connection.pack_command("MGET", *keys))
