"""Starting real processes for tests and benchmarks: servers, Redis (and Redis Cluster), Prometheus, an OTLP
receiver, the images as the chart runs them, random models. Never imported by shipped code."""
