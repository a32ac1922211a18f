"""PromQL the Prometheus provider sends, rendered from the runtime's contract names. Pure.

Each query covers both arms at once (`revision=~"<stable>|<canary>"`, summed by revision), so the
two arms are read at the same evaluation time over the same window: a paired measurement.
The runtime puts `model`, `version`, `revision` and `track` on every series; `namespace` is a target
label that the scrape configuration adds (`__meta_kubernetes_namespace`, or a static label).
Arms are told apart by revision, never by track: the track of a revision changes on promotion.

Custom metrics may use placeholders: `{{canary}}` and `{{stable}}` expand to the label matchers
of that arm (`namespace="ml", model="fraud", revision="abc123"`, no braces, so they combine with
other matchers: `my_metric{ {{canary}}, code="200" }`), `{{window}}` to the window (`120s`),
`{{namespace}}` and `{{model}}` to those names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from modeldeploy.runtime import contract

NAMESPACE_LABEL = "namespace"

QUERY_REQUESTS = "requests"
QUERY_LATENCY = "latency"
QUERY_CLASSES = "classes"
QUERY_SCORES = "scores"
QUERY_REJECTIONS = "rejections"
QUERY_MIRRORED = "mirrored"
CUSTOM_PREFIX = "metric:"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def regex_alternatives(values: tuple[str, ...]) -> str:
    """An RE2 alternation matching exactly these values, as a PromQL string literal."""
    return quote("|".join(re.escape(v) for v in values))


def range_duration(seconds: float) -> str:
    """A PromQL range (`[...]`) duration: whole seconds, at least 1s."""
    return f"{max(1, math.ceil(seconds))}s"


@dataclass(frozen=True)
class Selector:
    """Which series belong to the analysed ModelDeployment."""

    namespace: str
    model: str

    def arm(self, revision: str) -> str:
        """Matchers of one arm, without braces."""
        return (
            f"{NAMESPACE_LABEL}={quote(self.namespace)}, "
            f"{contract.LABEL_MODEL}={quote(self.model)}, "
            f"{contract.LABEL_REVISION}={quote(revision)}"
        )

    def arms(self, stable: str, canary: str) -> str:
        """Matchers of both arms, without braces."""
        return (
            f"{NAMESPACE_LABEL}={quote(self.namespace)}, "
            f"{contract.LABEL_MODEL}={quote(self.model)}, "
            f"{contract.LABEL_REVISION}=~{regex_alternatives((stable, canary))}"
        )


def _increase_by(metric: str, by: str, matchers: str, window: str) -> str:
    return f"sum by ({contract.LABEL_REVISION}, {by}) (increase({metric}{{{matchers}}}[{window}]))"


def arm_queries(selector: Selector, stable: str, canary: str, window_seconds: float) -> dict[str, str]:
    """The built-in queries, by name; each returns series labelled with `revision`."""
    matchers = selector.arms(stable, canary)
    window = range_duration(window_seconds)
    return {
        QUERY_REQUESTS: _increase_by(contract.METRIC_REQUESTS_TOTAL, contract.LABEL_CODE, matchers, window),
        QUERY_LATENCY: _increase_by(f"{contract.METRIC_REQUEST_DURATION}_bucket", "le", matchers, window),
        QUERY_CLASSES: _increase_by(contract.METRIC_PREDICTION_CLASS_TOTAL, contract.LABEL_CLASS, matchers, window),
        QUERY_SCORES: _increase_by(f"{contract.METRIC_PREDICTION_SCORE}_bucket", "le", matchers, window),
        QUERY_REJECTIONS: _increase_by(contract.METRIC_INPUT_REJECTIONS_TOTAL, contract.LABEL_REASON, matchers, window),
    }


def mirror_query(selector: Selector, stable: str, canary: str, window_seconds: float) -> str:
    """Copies stable's pods mirrored to the canary over the span, by outcome (labelled `revision` = stable)."""
    matchers = f"{selector.arm(stable)}, {contract.LABEL_CANDIDATE}={quote(canary)}"
    return _increase_by(
        contract.METRIC_MIRROR_REQUESTS_TOTAL, contract.LABEL_OUTCOME, matchers, range_duration(window_seconds)
    )


_PLACEHOLDER = re.compile(r"\{\{\s*(canary|stable|window|namespace|model)\s*\}\}")


def expand_custom(query: str, selector: Selector, stable: str, canary: str, window_seconds: float) -> str:
    """A custom metric's query with its placeholders expanded."""
    values = {
        "canary": selector.arm(canary),
        "stable": selector.arm(stable),
        "window": range_duration(window_seconds),
        "namespace": selector.namespace,
        "model": selector.model,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)
