"""Operations: liveness and readiness probes, and Prometheus metrics."""
