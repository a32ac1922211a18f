"""The shadow's agreement check and where its counts come from (pure: the judge, the pods provider's parser,
the PromQL)."""

from __future__ import annotations

from modeldeploy.operator.analysis.judge import check_level, judge
from modeldeploy.operator.analysis.promql import Selector, mirror_query
from modeldeploy.operator.analysis.providers.pods import parse_metrics
from modeldeploy.operator.analysis.samples import RawArm, RawWindow
from modeldeploy.operator.analysis.target import ShadowGate
from modeldeploy.operator.api.analysis import Analysis

ANALYSIS = Analysis.model_validate({"minRequests": 100, "compareToStable": {}})
GATE = ShadowGate(min_agreement_percent=98)


def window(agreed: float, disagreed: float = 0, errors: float = 0, dropped: float = 0) -> RawWindow:
    mirrored = {"agreed": agreed, "disagreed": disagreed, "candidate_error": errors, "dropped": dropped}
    stable = RawArm(requests_by_code={"200": 5000}, mirrored=mirrored)
    canary = RawArm(requests_by_code={"200": agreed + disagreed, "500": errors})
    return RawWindow(stable=stable, canary=canary, window_seconds=60)


def test_a_candidate_differing_on_10_percent_fails_98() -> None:
    j = judge(ANALYSIS, window(900, 100), shadow=GATE)
    c = next(c for c in j.checks if c.metric == "agreementPercent")
    assert j.verdict == "Fail" and c.verdict == "Fail" and c.value == 90.0 and c.threshold == 98
    assert "900 of 1000 mirrored requests agreed" in c.message and "minAgreementPercent 98%" in c.message


def test_an_agreeing_candidate_passes() -> None:
    j = judge(ANALYSIS, window(1000, 0), shadow=GATE)
    assert j.verdict == "Pass", j.message


def test_a_little_below_the_minimum_is_not_yet_significant() -> None:
    j = judge(ANALYSIS, window(97, 3), shadow=GATE)
    c = next(c for c in j.checks if c.metric == "agreementPercent")
    assert c.verdict == "Pass" and "not significantly" in c.message


def test_candidate_errors_are_disagreements() -> None:
    j = judge(ANALYSIS, window(0, 0, errors=500), shadow=GATE)
    c = next(c for c in j.checks if c.metric == "agreementPercent")
    assert c.verdict == "Fail" and c.value == 0.0


def test_no_mirrored_request_is_inconclusive_never_a_pass() -> None:
    j = judge(ANALYSIS, window(0, 0, dropped=400), shadow=GATE)
    c = next(c for c in j.checks if c.metric == "agreementPercent")
    assert c.verdict == "Inconclusive" and j.verdict != "Pass" and "400 copies dropped" in c.message


def test_the_agreement_minimum_shares_the_error_budget() -> None:
    default = Analysis()  # the three comparisons with stable
    assert abs(check_level(default, 1, GATE) - check_level(default, 1) * 3 / 4) < 1e-12


def test_pods_provider_reads_only_the_copies_to_this_candidate() -> None:
    base = 'model="m",version="1",revision="s1",track="stable"'
    page = "\n".join(
        [
            "# TYPE modeldeploy_mirror_requests_total counter",
            f'modeldeploy_mirror_requests_total{{{base},candidate="c1",outcome="agreed"}} 90',
            f'modeldeploy_mirror_requests_total{{{base},candidate="c1",outcome="disagreed"}} 10',
            f'modeldeploy_mirror_requests_total{{{base},candidate="old",outcome="agreed"}} 500',
            "",
        ]
    )
    counters, _ = parse_metrics(page, "m", "s1", candidate="c1")
    assert counters == {
        ("modeldeploy_mirror_requests_total", "agreed"): 90.0,
        ("modeldeploy_mirror_requests_total", "disagreed"): 10.0,
    }
    assert parse_metrics(page, "m", "s1")[0] == {}  # no shadow step: not read


def test_prometheus_mirror_query() -> None:
    q = mirror_query(Selector("ml", "m"), "s1", "c1", 59.5)
    assert q == (
        'sum by (revision, outcome) (increase(modeldeploy_mirror_requests_total{namespace="ml", model="m",'
        ' revision="s1", candidate="c1"}[60s]))'
    )
