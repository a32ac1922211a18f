"""What the API server does with a structural schema, done offline: default, prune, validate, run the CEL rules.

Used by the tests (and handy for checking a manifest before applying it). jsonschema and the CEL
engine (the `common-expression-language` package) are test dependencies, imported only when
validating or evaluating. The CEL engine lacks the Kubernetes CEL libraries, so our rules stay
within standard CEL.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuleResult:
    """One CEL rule evaluated at one node of an object."""

    path: str
    rule: str
    message: str
    passed: bool


def _children(schema: dict[str, Any], obj: Any, path: str) -> Iterator[tuple[dict[str, Any], Any, str]]:
    """The (schema, value, path) of every child of obj that the schema describes."""
    if isinstance(obj, dict):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if key in props:
                yield props[key], value, f"{path}.{key}"
            elif isinstance(extra, dict):
                yield extra, value, f"{path}[{key!r}]"
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(obj):
            yield schema["items"], value, f"{path}[{i}]"


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """A copy of obj with the schema's defaults filled in, top-down, as the API server does."""
    obj = copy.deepcopy(obj)
    _default_in_place(schema, obj)
    return obj


def _default_in_place(schema: dict[str, Any], obj: Any) -> None:
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
    for sub_schema, value, _ in _children(schema, obj, ""):
        _default_in_place(sub_schema, value)


def prune(schema: dict[str, Any], obj: Any) -> Any:
    """A copy of obj without the fields the schema does not know, as the API server stores it."""
    if _opaque(schema):
        return copy.deepcopy(obj)
    if isinstance(obj, dict):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in props:
                out[key] = prune(props[key], value)
            elif isinstance(extra, dict):
                out[key] = prune(extra, value)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], v) for v in obj]
    return copy.deepcopy(obj)


def _opaque(schema: dict[str, Any]) -> bool:
    """A node whose fields are not described (metadata, or one that preserves unknown fields): kept whole."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return True
    return "properties" not in schema and "additionalProperties" not in schema and "items" not in schema


def _typed(schema: dict[str, Any], obj: Any) -> Any:
    """obj as CEL sees it: `number` fields are doubles even when written as integers."""
    if schema.get("type") == "number" and isinstance(obj, int) and not isinstance(obj, bool):
        return float(obj)
    if isinstance(obj, dict):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: _typed(props[k] if k in props else extra if isinstance(extra, dict) else {}, v) for k, v in obj.items()
        }
    if isinstance(obj, list):
        items = schema.get("items")
        return [_typed(items if isinstance(items, dict) else {}, v) for v in obj]
    return obj


def evaluate_rules(schema: dict[str, Any], obj: Any, path: str = "self") -> list[RuleResult]:
    """Every x-kubernetes-validations rule evaluated at every node of obj that has one."""
    import cel  # noqa: PLC0415  (a test dependency, needed only here)

    out: list[RuleResult] = []
    for rule in schema.get("x-kubernetes-validations", []):
        passed = cel.evaluate(rule["rule"], {"self": _typed(schema, obj)})
        if not isinstance(passed, bool):
            raise TypeError(f"rule {rule['rule']!r} at {path} gave {passed!r}, not a bool")
        out.append(RuleResult(path, rule["rule"], rule.get("message", rule["rule"]), passed))
    for sub_schema, value, sub_path in _children(schema, obj, path):
        out.extend(evaluate_rules(sub_schema, value, sub_path))
    return out


def schema_errors(schema: dict[str, Any], obj: Any) -> list[str]:
    """OpenAPI v3 (draft 4 semantics: boolean exclusiveMinimum) validation errors, each with its path."""
    import jsonschema  # noqa: PLC0415  (a test dependency, needed only here)

    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


def validate(schema: dict[str, Any], obj: Any) -> list[str]:
    """Everything the API server would refuse in obj, after defaulting: schema errors, then failed CEL rules.

    Fields the schema does not know are reported too (the API server would prune them silently,
    which for a hand-written manifest is a typo).
    """
    defaulted = apply_defaults(schema, obj)
    errors = schema_errors(schema, defaulted)
    if prune(schema, defaulted) != defaulted:
        errors.append(f"unknown fields (the API server would prune them): {_unknown(schema, defaulted)}")
    if not errors:
        errors += [f"{r.path}: {r.message}" for r in evaluate_rules(schema, defaulted) if not r.passed]
    return errors


def _unknown(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict) and not _opaque(schema):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out += [f"{path}.{k}" for k in obj if k not in props and not isinstance(extra, dict)]
    for sub_schema, value, sub_path in _children(schema, obj, path):
        out += _unknown(sub_schema, value, sub_path)
    return out
