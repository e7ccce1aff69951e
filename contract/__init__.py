"""The contract both services share: one schema, one error table, one server setup.

The predictor and the transformer import this package; neither defines its own
request shapes or error codes, so a client sees the same answers from both.
"""
