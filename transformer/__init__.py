"""KServe transformer: validation and a per-text Redis cache in front of the predictor (``python -m transformer``)."""
