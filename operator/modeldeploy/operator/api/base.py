"""What every API model shares: camelCase on the wire, strictness, and CEL rules declared beside their twin."""

from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
"""A Go-style duration (`30s`, `2m`, `1h30m`), the form CEL's `duration()` reads."""


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as `90s`, `2m` or `1h30m` (the form CEL's duration() reads)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit (ms, s, m, h), e.g. 30s or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for whole seconds, in the shortest form (`90s` -> `1m30s`)."""
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s or not (h or m) else ""]
    return "".join(parts)


class CelRule(NamedTuple):
    """One cross-field rule: its CEL text for the API server and the message both twins report."""

    rule: str
    message: str
    field_path: str | None = None


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """The `json_schema_extra` that puts rules into the CRD as `x-kubernetes-validations`."""
    out: list[dict[str, str]] = []
    for r in rules:
        item = {"rule": r.rule, "message": r.message}
        if r.field_path:
            item["fieldPath"] = r.field_path
        out.append(item)
    return {"x-kubernetes-validations": out}


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata the operator reads; everything else is kept as it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


def count_set(*values: object) -> int:
    return sum(v is not None for v in values)
