"""The cache key of one text's result: shared so every writer and reader agrees.

A key names the release, the model, the model version that computed (or is expected
to compute) the result, and the preprocessing version, so a canary serving another
model never reads the primary's entries, two releases sharing one external Redis never
read each other's, and a change in how texts are decoded invalidates old entries
without a flush. The text itself appears only as a keyed hash (BLAKE2b with a secret
key, its built-in MAC mode): without the secret, someone who can read Redis (or list
its keys) cannot confirm a guessed text by hashing it, and the same text hashes
differently under another release's secret.

The secret comes from the chart (a Secret, generated when not given); a process
started without one (``make serve``, the tests) uses ``DEV_SECRET``, which is public,
and says so in a warning (transformer/__main__.py).
"""

from __future__ import annotations

import hashlib
import re

# Bump when anything between the client's bytes and the model's input changes
# (schema decoding, truncation rules): old entries then simply stop matching.
PREPROCESSING_VERSION = "1"
PREFIX = "tc"  # the chart's Redis ACL lets the transformer's user touch only ~tc:* keys
# Public, in the source: for local runs only. Keys made with it are as guessable as unkeyed hashes.
DEV_SECRET = b"text-classifier: development cache key, not a secret"
# A release name as Helm allows it (DNS-1123 label): nothing that could end a key's field early.
RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?")


class CacheKeys:
    """Builds keys ``tc:[<release>:]<model>:<version>:p<preprocessing>[:<tag>]:<keyed hash>``.

    Holds the secret as bytes (a hash object would not pickle, and the transformer's model is
    pickled into KServe's ``--workers`` processes)."""

    def __init__(self, secret: bytes, release: str = ""):
        if not secret:
            raise ValueError("the cache key secret is empty")
        if release and not RELEASE.fullmatch(release):
            raise ValueError(f"the cache key release {release!r} is not a Helm release name (lowercase letters, "
                             "digits and '-', at most 53)")
        self._secret = secret[:64]  # BLAKE2b's key is at most 64 bytes; the chart's is 32 bytes
        self.prefix = f"{PREFIX}:{release}:" if release else f"{PREFIX}:"

    @property
    def is_dev(self) -> bool:
        return self._secret == DEV_SECRET

    def digest(self, text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._secret, digest_size=16).hexdigest()

    def key(self, model_name: str, model_version: str, text: str, tag: str = "") -> str:
        """``tag`` names an answer other than the plain head-truncated prediction (transformer/variants.py)."""
        if tag:
            return f"{self.prefix}{model_name}:{model_version}:p{PREPROCESSING_VERSION}:{tag}:{self.digest(text)}"
        return f"{self.prefix}{model_name}:{model_version}:p{PREPROCESSING_VERSION}:{self.digest(text)}"
