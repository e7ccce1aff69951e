"""Safe rollouts: ``python -m rollout.verdict`` judges a canary from Prometheus (docs/rollouts.md, "Rolling out a model")."""
