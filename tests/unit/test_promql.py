"""The PromQL the operator renders (its answers from a real Prometheus are in tests/analysis)."""

from __future__ import annotations

from modeldeploy.operator.analysis import promql
from modeldeploy.runtime import contract

SEL = promql.Selector("ml", "fraud-scorer")


def test_each_signal_has_one_query_over_both_arms() -> None:
    queries = promql.arm_queries(SEL, "aaa111", "bbb222", 120)
    assert set(queries) == {"requests", "latency", "classes", "scores", "rejections"}
    assert queries["requests"] == (
        "sum by (revision, code) (increase(modeldeploy_requests_total"
        '{namespace="ml", model="fraud-scorer", revision=~"aaa111|bbb222"}[120s]))'
    )
    for query in queries.values():
        assert 'revision=~"aaa111|bbb222"' in query
        assert query.endswith("[120s]))")


def test_metric_names_come_from_the_runtime_contract() -> None:
    queries = promql.arm_queries(SEL, "a", "b", 30)
    assert f"{contract.METRIC_REQUEST_DURATION}_bucket" in queries["latency"]
    assert f"{contract.METRIC_PREDICTION_SCORE}_bucket" in queries["scores"]
    assert contract.METRIC_PREDICTION_CLASS_TOTAL in queries["classes"]
    assert contract.METRIC_INPUT_REJECTIONS_TOTAL in queries["rejections"]
    assert "by (revision, le)" in queries["latency"]


def test_label_values_are_quoted_and_regex_escaped() -> None:
    assert promql.quote('a"b\\c') == '"a\\"b\\\\c"'
    nasty = promql.Selector('n"s', "m.x")
    query = promql.arm_queries(nasty, "r.1", "r+2", 30)["requests"]
    assert 'namespace="n\\"s"' in query
    assert 'revision=~"r\\\\.1|r\\\\+2"' in query


def test_range_durations_are_whole_seconds() -> None:
    assert promql.range_duration(120) == "120s"
    assert promql.range_duration(0.2) == "1s"
    assert promql.range_duration(90.5) == "91s"


def test_custom_placeholders_expand_to_matchers() -> None:
    query = "sum(rate(x{ {{canary}} }[{{window}}])) / sum(rate(x{{{stable}}}[{{ window }}])) + {{model}}"
    out = promql.expand_custom(query, SEL, "aaa", "bbb", 60)
    assert out == (
        'sum(rate(x{ namespace="ml", model="fraud-scorer", revision="bbb" }[60s])) / '
        'sum(rate(x{namespace="ml", model="fraud-scorer", revision="aaa"}[60s])) + fraud-scorer'
    )


def test_custom_query_without_placeholders_is_untouched() -> None:
    assert promql.expand_custom("vector(1)", SEL, "a", "b", 30) == "vector(1)"
