"""Offline stand-ins for what the API server does with our CRD schemas (defaulting, pruning, validation)."""
