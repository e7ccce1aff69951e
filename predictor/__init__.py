"""KServe predictor for Hugging Face sequence classifiers (``python -m predictor``)."""
