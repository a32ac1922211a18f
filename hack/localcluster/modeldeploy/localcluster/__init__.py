"""A real local Kubernetes control plane, node agent and Prometheus for tests and the demo (not shipped)."""
