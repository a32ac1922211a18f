"""Shared test configuration: the local Kubernetes cluster plugin (fixtures `local_cluster`, `k8s_namespace`).

See hack/localcluster/README.md. Tests marked `cluster` (or using those fixtures) run against a
real etcd + kube-apiserver + controllers + scheduler + node agent + Prometheus, started once per
session inside a network namespace that this pytest process enters.
"""

pytest_plugins = ["modeldeploy.localcluster.pytest_plugin"]
