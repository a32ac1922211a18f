"""Read the model contract from the runtime pods (I/O at the edge; the comparison is `contract`).

`GET /v2/models/{name}` on one Ready pod of stable and one of the canary, concurrently, with a
short timeout. Any failure (refused, timeout, an HTTP error, a body that is not a model metadata
document) makes the reading "not yet known", never a pass: the planner keeps the canary without
traffic and the next reconcile reads again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from modeldeploy.runtime import contract as runtime_contract

from .contract import ContractReading, compare_documents

TIMEOUT_S = 2.0


async def _metadata(http: httpx.AsyncClient, url: str, model: str, timeout_s: float) -> Any:
    response = await http.get(url + runtime_contract.model_path(model), timeout=timeout_s)
    response.raise_for_status()
    return response.json()


async def read_contract(
    http: httpx.AsyncClient,
    revision: str,
    *,
    stable: tuple[str, str],
    canary: tuple[str, str],
    timeout_s: float = TIMEOUT_S,
) -> ContractReading:
    """The canary revision's contract against stable's, from one pod of each: `(url, model name)`."""
    answers = await asyncio.gather(
        _metadata(http, stable[0], stable[1], timeout_s),
        _metadata(http, canary[0], canary[1], timeout_s),
        return_exceptions=True,
    )
    for arm, (url, _), answer in zip(("stable", "canary"), (stable, canary), answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, (httpx.HTTPError, ValueError)):
                raise answer
            detail = str(answer) or type(answer).__name__
            return ContractReading(revision, unknown=f"the {arm} pod at {url} did not answer its metadata: {detail}")
    reading = compare_documents(revision, answers[0], answers[1])
    if stable[1] != canary[1] and reading.unknown is None:
        renamed = f'model name "{stable[1]}" -> "{canary[1]}" (clients call /v2/models/<name>)'
        reading = ContractReading(revision, differences=(renamed, *reading.differences))
    return reading
