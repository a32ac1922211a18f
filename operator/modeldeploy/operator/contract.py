"""The model contract: inputs and outputs (name, datatype, shape) as the runtime reports them, and
whether a canary's contract can replace stable's (pure: dicts in, differences out).

The runtime answers `GET /v2/models/{name}` (Open Inference Protocol v2 model metadata) with
`inputs` and `outputs`, each `{name, datatype, shape}`, where -1 is a dynamic dimension. The
operator reads it from one Ready pod of stable and one of the canary before the canary takes any
traffic (`handlers`), and `differences` decides. A change is **incompatible** (an existing client
would break) when:

- an input or output of stable is missing from the canary (a renamed one is missing under its old
  name; the new name is then an added input, or an extra output);
- the canary has an input stable lacks: every input of a model is required, so requests that
  worked on stable would be refused;
- a tensor's datatype changed (`FP32 -> FP64`);
- a tensor's rank changed (`[-1, 4] -> [-1, 4, 1]`);
- a fixed dimension changed to another fixed size (`[-1, 4] -> [-1, 8]`);
- an input's dynamic dimension became fixed (`[-1, 4] -> [1, 4]`): the canary accepts less than
  stable did (a batch of 8 would be refused).

It is **compatible** when:

- a fixed dimension became dynamic (`[1, 4] -> [-1, 4]`): the canary accepts and returns at least
  what stable did;
- an output's dynamic dimension became fixed: what it returns still fits what clients expected;
- the canary has an extra output: clients that name the outputs they want never see it, and v2
  clients that take every output find theirs by name;
- the order of inputs or outputs changed: the protocol addresses tensors by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

DYNAMIC = -1
Kind = Literal["input", "output"]


@dataclass(frozen=True)
class Tensor:
    """One input or output of a model."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelContract:
    """A model's inputs and outputs, by name."""

    inputs: Mapping[str, Tensor]
    outputs: Mapping[str, Tensor]


class ContractError(ValueError):
    """The metadata document is not a v2 model metadata answer."""


def _tensors(doc: Mapping[str, Any], key: str) -> dict[str, Tensor]:
    raw = doc.get(key)
    if not isinstance(raw, list):
        raise ContractError(f"'{key}' is not a list")
    out: dict[str, Tensor] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            raise ContractError(f"an entry of '{key}' is not an object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise ContractError(f"an entry of '{key}' lacks a string name, a string datatype or a shape list")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= DYNAMIC for d in shape):
            raise ContractError(f"{key[:-1]} {name!r} has a shape that is not a list of sizes or -1: {shape}")
        out[name] = Tensor(name, datatype, tuple(shape))
    return out


def parse_metadata(doc: Any) -> ModelContract:
    """The contract in a `GET /v2/models/{name}` answer; ContractError when it is not one."""
    if not isinstance(doc, Mapping):
        raise ContractError("the answer is not a JSON object")
    return ModelContract(inputs=_tensors(doc, "inputs"), outputs=_tensors(doc, "outputs"))


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _tensor_differences(kind: Kind, old: Tensor, new: Tensor) -> list[str]:
    out: list[str] = []
    label = f'{kind} "{old.name}"'
    if old.datatype != new.datatype:
        out.append(f"{label}: datatype {old.datatype} -> {new.datatype}")
    if len(old.shape) != len(new.shape):
        out.append(
            f"{label}: shape {_shape(old.shape)} -> {_shape(new.shape)} (rank {len(old.shape)} -> {len(new.shape)})"
        )
        return out
    for axis, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
        if b in {a, DYNAMIC}:
            continue  # unchanged, or fixed -> dynamic: accepts and returns at least as much
        if a == DYNAMIC and kind == "output":
            continue  # a dynamic output dimension now fixed still fits what clients expected
        out.append(f"{label}: shape {_shape(old.shape)} -> {_shape(new.shape)} (dimension {axis}: {a} -> {b})")
    return out


def differences(stable: ModelContract, canary: ModelContract) -> list[str]:
    """The incompatible differences from stable to canary (see the module docstring), stable's order
    first, then what the canary adds; empty when the canary can take stable's traffic."""
    out: list[str] = []
    for name, old in stable.inputs.items():
        new = canary.inputs.get(name)
        if new is None:
            out.append(f'input "{name}" missing')
        else:
            out.extend(_tensor_differences("input", old, new))
    out.extend(f'input "{name}" added (every input is required)' for name in canary.inputs if name not in stable.inputs)
    for name, old in stable.outputs.items():
        new = canary.outputs.get(name)
        if new is None:
            out.append(f'output "{name}" missing')
        else:
            out.extend(_tensor_differences("output", old, new))
    return out


@dataclass(frozen=True)
class ContractReading:
    """What the edge read for one canary revision this tick: the differences, or why it does not know."""

    revision: str
    """The canary revision read."""
    differences: tuple[str, ...] = ()
    unknown: str | None = None
    """Set when a pod did not answer, or answered something that is not a model contract: not yet
    known (never a pass); the planner waits and the edge reads again."""


def compare_documents(revision: str, stable_doc: Any, canary_doc: Any) -> ContractReading:
    """The reading of two metadata answers (stable's, the canary's)."""
    try:
        stable = parse_metadata(stable_doc)
    except ContractError as e:
        return ContractReading(revision, unknown=f"stable's model metadata: {e}")
    try:
        canary = parse_metadata(canary_doc)
    except ContractError as e:
        return ContractReading(revision, unknown=f"the canary's model metadata: {e}")
    return ContractReading(revision, differences=tuple(differences(stable, canary)))
