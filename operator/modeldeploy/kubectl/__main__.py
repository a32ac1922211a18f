"""`python -m modeldeploy.kubectl`, the same as the `kubectl-modeldeploy` console script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
