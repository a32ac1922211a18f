"""Control annotations and their authors."""

from __future__ import annotations

from modeldeploy.operator.controls import approval_names, author_of, field_manager, read_controls


def mf(manager: str, key: str, time: str = "2026-01-01T00:00:00Z") -> dict[str, object]:
    return {"manager": manager, "time": time, "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{key}": {}}}}}


def test_author_from_by_annotation_then_field_manager_then_unknown() -> None:
    key = "modeldeploy.io/abort"
    assert author_of({key: "1", key + "-by": "alice"}, [mf("kubectl-annotate", key)], "abort") == "alice"
    assert author_of({key: "1"}, [mf("kubectl-annotate", key)], "abort") == "kubectl-annotate"
    assert author_of({key: "1"}, [mf("kubectl-annotate", "other")], "abort") == "unknown"
    assert author_of({key: "1"}, None, "abort") == "unknown"


def test_the_latest_manager_wins() -> None:
    key = "modeldeploy.io/approve"
    fields = [mf("argocd", key, "2026-01-01T00:00:00Z"), mf("kubectl-annotate", key, "2026-01-02T00:00:00Z")]
    assert field_manager(fields, ("metadata", "annotations", key)) == "kubectl-annotate"


def test_read_controls_ignores_empty_values() -> None:
    c = read_controls(
        {"modeldeploy.io/approve": "abc", "modeldeploy.io/abort": " ", "modeldeploy.io/promote-full": "y"}, []
    )
    assert c.approve is not None and c.approve.value == "abc"
    assert c.abort is None and c.retry is None
    assert c.promote_full is not None and c.promote_full.name == "promote-full"


def test_approval_names_the_revision() -> None:
    assert approval_names("abc123", "abc123")
    assert approval_names("abc123/2", "abc123")
    assert not approval_names("abc1234", "abc123")
    assert not approval_names("true", "abc123")
