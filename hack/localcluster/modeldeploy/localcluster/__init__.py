"""A real local Kubernetes control plane, node agent and Prometheus for tests and the demo (not shipped).

See hack/localcluster/README.md. The pytest fixtures are in `modeldeploy.localcluster.pytest_plugin`.
"""
