"""The cache key of one text's result: shared so every writer and reader agrees.

A key names the model, the model version that computed (or is expected to compute)
the result, and the preprocessing version, so a canary serving another model never
reads the primary's entries, and a change in how texts are decoded invalidates old
entries without a flush. The text itself appears only as a hash.
"""

from __future__ import annotations

import hashlib

# Bump when anything between the client's bytes and the model's input changes
# (schema decoding, truncation rules): old entries then simply stop matching.
PREPROCESSING_VERSION = "1"
PREFIX = "tc"


def cache_key(model_name: str, model_version: str, text: str, tag: str = "") -> str:
    """``tag`` names an answer other than the plain head-truncated prediction (transformer/variants.py)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    if tag:
        return f"{PREFIX}:{model_name}:{model_version}:p{PREPROCESSING_VERSION}:{tag}:{digest}"
    return f"{PREFIX}:{model_name}:{model_version}:p{PREPROCESSING_VERSION}:{digest}"
