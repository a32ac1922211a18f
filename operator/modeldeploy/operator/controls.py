"""Manual controls: the annotations people (and tools) use to steer a rollout, and who set them.

| annotation | value | effect |
| --- | --- | --- |
| `modeldeploy.io/approve` | the canary's revision (`<revision>/<x>` for a 2nd approval) | passes an approval step |
| `modeldeploy.io/abort` | anything (`true`, a ticket number) | rolls the canary back now |
| `modeldeploy.io/retry` | the rolled-back revision | allows that revision to be rolled out again |
| `modeldeploy.io/promote-full` | anything | skips the remaining steps and promotes the canary |

Each control acts once per value: the value acted on is recorded in `status.handled`, so a
leftover annotation does nothing until its value changes. The author is the
`modeldeploy.io/<control>-by` annotation when present (a CLI or a bot can say who it acts for),
else the field manager that last wrote the annotation (from `metadata.managedFields`: `kubectl`,
`kubectl-annotate`, `argocd-controller`, ...), else `unknown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "modeldeploy.io/"
ControlName = Literal["approve", "abort", "retry", "promote-full"]
CONTROLS: tuple[ControlName, ...] = ("approve", "abort", "retry", "promote-full")
UNKNOWN_AUTHOR = "unknown"


def annotation(control: ControlName) -> str:
    """The annotation key of a control, e.g. `modeldeploy.io/approve`."""
    return PREFIX + control


@dataclass(frozen=True)
class Control:
    """One control annotation as found on the object."""

    name: ControlName
    value: str
    author: str


@dataclass(frozen=True)
class Controls:
    """The control annotations present on a ModelDeployment."""

    approve: Control | None = None
    abort: Control | None = None
    retry: Control | None = None
    promote_full: Control | None = None


def field_manager(managed_fields: Sequence[Mapping[str, Any]] | None, path: Sequence[str]) -> str | None:
    """The manager that owns the field at `path` (e.g. `("metadata", "annotations", "modeldeploy.io/abort")`).

    When several managers share it (server-side apply co-ownership), the most recent entry wins.
    """
    best: tuple[str, str] | None = None
    for entry in managed_fields or ():
        node: Any = entry.get("fieldsV1") or {}
        for part in path:
            if not isinstance(node, Mapping):
                node = None
                break
            node = node.get(f"f:{part}")
            if node is None:
                break
        if node is None:
            continue
        manager = str(entry.get("manager") or "")
        when = str(entry.get("time") or "")
        if manager and (best is None or when >= best[1]):
            best = (manager, when)
    return best[0] if best else None


def author_of(
    annotations: Mapping[str, str], managed_fields: Sequence[Mapping[str, Any]] | None, control: ControlName
) -> str:
    """Who set a control: its `-by` annotation, else the annotation's field manager, else `unknown`."""
    explicit = annotations.get(annotation(control) + "-by", "").strip()
    if explicit:
        return explicit
    return field_manager(managed_fields, ("metadata", "annotations", annotation(control))) or UNKNOWN_AUTHOR


def read_controls(annotations: Mapping[str, str], managed_fields: Sequence[Mapping[str, Any]] | None) -> Controls:
    """The controls present (non-empty values only), each with its author."""
    found: dict[str, Control] = {}
    for name in CONTROLS:
        value = annotations.get(annotation(name), "").strip()
        if value:
            found[name.replace("-", "_")] = Control(name, value, author_of(annotations, managed_fields, name))
    return Controls(**found)


def approval_names(value: str, revision: str) -> bool:
    """True when an approve value names `revision`: exactly it, or `<revision>/<suffix>`."""
    return value == revision or value.startswith(revision + "/")
