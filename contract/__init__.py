"""The contract both services share: one schema, one error table, one cache key, one model face.

The predictor and the transformer import this package; neither defines its own
request shapes, error codes or answer encoding, so a client sees the same answers
from both. How a process serves it is runtime/.
"""
