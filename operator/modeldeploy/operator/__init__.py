"""modeldeploy's Kubernetes operator: ModelDeployment in, serving revisions and judged rollouts out."""
