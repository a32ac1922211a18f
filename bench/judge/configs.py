"""The configurations and changes the simulation measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modeldeploy.operator.api.analysis import Analysis

from .simulate import Config
from .traffic import Change

ROOT = Path(__file__).resolve().parents[2]


def _tier1() -> Config:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples/tier1-fraud-scorer.yaml").read_text())
    rollout = doc["spec"]["rollout"]
    analysis = dict(rollout["analysis"])
    analysis.pop("metrics", None)  # custom PromQL: plain bounds on a query, not simulated
    analysis["provider"] = {"pods": {}}
    steps = rollout["steps"]
    interval = 30
    spans = []
    for step in steps:
        held = step.get("analysis") or step.get("pause")
        if held and "duration" in held:
            text = held["duration"]
            seconds = int(text[:-1]) * (60 if text.endswith("m") else 1)
            spans.append(seconds // interval)
    return Config("tier-1 example", Analysis.model_validate(analysis), tuple(spans), len(steps) + 1)


DEFAULTS = Config("README defaults (`analysis: {}`)", Analysis(), (12, 12), 5)
"""`analysis: {}` under the built-in steps (setWeight 25, pause, setWeight 50, pause: 4 steps, 5 phases);
each held weight simulated for 6 minutes."""

EVERYTHING = Config(
    "every check on",
    Analysis.model_validate(
        {
            "slo": {"latencyP99Ms": 50, "errorRatePercent": 2},
            "compareToStable": {"maxLatencyRatio": 1.2, "maxErrorRateDelta": 0.1, "maxClientErrorRateDelta": 1},
            "behaviour": {"maxClassMixDistance": 0.05, "maxScoreDistance": 0.05, "maxInputRejectionPercent": 1},
        }
    ),
    (12, 12),
    3,
)


def configs() -> list[Config]:
    return [DEFAULTS, _tier1(), EVERYTHING]


def changes(ticks: int) -> list[Change]:
    mid = ticks // 2
    return [
        Change("errors 2x", errors=2.0),
        Change("errors 5x", errors=5.0),
        Change("errors 5x from mid-canary", errors=5.0, start=mid),
        Change("p99 +20%", latency=1.2),
        Change("p99 +50%", latency=1.5),
        Change("class share -5 points", class_points=5.0),
        Change("class share -20 points", class_points=20.0),
    ]


def judged(config: Config, change: Change) -> bool:
    """Whether the configuration has a check that the change is meant to trip."""
    a = config.analysis
    if change.class_points:
        return a.behaviour is not None and a.behaviour.max_class_mix_distance is not None
    return True
