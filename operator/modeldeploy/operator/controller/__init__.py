"""The impure side of the operator: watch events in, one loop per ModelDeployment, the planner in the middle.

workqueue.py  one asyncio task per object: wake, requeue, back-off, end when the object is gone
read.py       what a pass reads: the object (GET), policies, Deployments and Pods (kopf's indices)
reconcile.py  read -> contract -> analyse -> plan -> enact, as a short table of contents
enact.py      apply children, scale, delete, relabel, status write (first on a rollback), Events
wiring.py     the only module importing kopf: login, indices, watch handlers, operator state in `memo`
"""

from __future__ import annotations

from .enact import rollback_seconds
from .reconcile import Operator
from .workqueue import Loop, ObjectGone, WorkQueue

__all__ = ["Loop", "ObjectGone", "Operator", "WorkQueue", "rollback_seconds"]
