"""Cache keys: the text appears only as a hash keyed with the release's secret, and the release is in the prefix."""

import hashlib

import pytest

from contract.cachekey import DEV_SECRET, CacheKeys


def unkeyed(text: str) -> str:
    """The hash keys carried until issue 26: anyone could compute it from a guessed text."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def test_the_key_names_release_model_version_and_variant():
    keys = CacheKeys(b"secret", "prod")
    assert keys.key("sentiment", "v1", "hello").startswith("tc:prod:sentiment:v1:p1:")
    assert keys.key("sentiment", "v1", "hello", "t.chunks").startswith("tc:prod:sentiment:v1:p1:t.chunks:")
    assert CacheKeys(b"secret").key("sentiment", "v1", "hello").startswith("tc:sentiment:v1:p1:")


def test_the_text_hash_is_keyed_by_the_secret():
    text = "a sentence someone may want to confirm"
    one, other = CacheKeys(b"one secret", "prod"), CacheKeys(b"another secret", "prod")
    assert unkeyed(text) not in one.key("m", "v", text)
    assert one.digest(text) != other.digest(text)
    assert one.digest(text) == CacheKeys(b"one secret", "staging").digest(text)  # the release is in the prefix
    assert one.digest(text) != one.digest(text + " ")


def test_surrogates_hash_without_error():
    assert len(CacheKeys(b"k").digest("\ud800")) == 32


@pytest.mark.parametrize("release", ["Prod", "a:b", "x" * 54, "-a", "a b", "{slot}"])
def test_a_release_that_could_break_a_key_is_refused(release):
    with pytest.raises(ValueError):
        CacheKeys(b"k", release)


def test_an_empty_secret_is_refused_and_the_dev_key_is_known_as_such():
    with pytest.raises(ValueError):
        CacheKeys(b"")
    assert CacheKeys(DEV_SECRET).is_dev and not CacheKeys(b"real").is_dev
