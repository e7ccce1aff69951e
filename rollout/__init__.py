"""Safe rollouts: ``python -m rollout.verdict`` judges a canary from Prometheus (README, "Rolling out a model")."""
