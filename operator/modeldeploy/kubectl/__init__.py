"""`kubectl modeldeploy`: read and steer ModelDeployment rollouts from a terminal or a script.

The plugin is a client of the API the operator publishes (the ModelDeployment's `status` and the
control annotations of `modeldeploy.io/`), and imports nothing of the operator. Modules:

- `timefmt`: RFC 3339 times and ages (pure)
- `render`: the `status` tree (pure: a function of the object and `now`)
- `tables`: `list` and `history` (pure)
- `controls`: what each control writes and how its outcome is read back (pure)
- `screen`: redrawing a frame in place on a terminal (pure frames, one write at the edge)
- `kube`: the API edge (the `kubernetes` client's kubeconfig loader, exec plugins included)
- `cli`: arguments, the commands, exit codes
"""
