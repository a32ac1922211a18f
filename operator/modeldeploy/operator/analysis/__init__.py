"""Analysis: measure the canary and stable arms over the same window and judge the canary.

The operator's reconcile calls `analysis_due` (pure) and, when it says so, `Analyser.tick`, which
returns the decision record of that tick (`AnalysisStatus`). The planner acts on its counters:

- a Pass resets `consecutive_failures` and `consecutive_inconclusive` and adds one to `passes`;
- a Fail adds one to `consecutive_failures` and resets `consecutive_inconclusive`;
- an Inconclusive adds one to `consecutive_inconclusive` and leaves `consecutive_failures` as it is
  (too little evidence neither forgives an earlier failure nor adds to it).

The rollback boundary is defined once, in `Analysis.failure_limit`: the tick whose
`consecutive_failures` reaches `failure_limit` triggers it. A provider error (unreachable,
timeout, bad answer) is Inconclusive with the error in the message, never a Fail.
"""

from __future__ import annotations

from .engine import Analyser, analysis_due
from .target import AnalysisTarget, Arm

__all__ = ["Analyser", "AnalysisTarget", "Arm", "analysis_due"]
