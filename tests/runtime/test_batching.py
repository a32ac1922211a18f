"""Dynamic batching under concurrency: every answer equals the unbatched answer, and batches form."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from tests.runtime import models
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer, start_server
from tests.runtime.test_http import scrape

from modeldeploy.runtime import contract as c


def body(x: np.ndarray, rid: str) -> bytes:
    return orjson.dumps(
        {
            "id": rid,
            "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
        }
    )


async def fire(url: str, bodies: list[bytes], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(client.post(url, content=b) for b in bodies)))


async def test_concurrent_answers_equal_unbatched_answers(clf_batched: RuntimeServer) -> None:
    rng = np.random.default_rng(11)
    xs = [rng.normal(size=(int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(160)]
    before = scrape(clf_batched)
    responses = await fire(
        clf_batched.url + "/v2/models/clf/infer", [body(x, str(i)) for i, x in enumerate(xs)], concurrency=32
    )
    after = scrape(clf_batched)
    data = models.classifier(0)
    for i, (x, r) in enumerate(zip(xs, responses, strict=True)):
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["id"] == str(i)
        out = doc["outputs"][0]
        assert out["shape"] == [x.shape[0], 3]
        got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
        want = models.classifier_reference(data, x)  # the same rows run alone
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert (got.argmax(1) == want.argmax(1)).all()

    def delta(name: str) -> float:
        key = (name, tuple(sorted({"model": "clf", "version": "1", "revision": "", "track": "stable"}.items())))
        return after[key] - before.get(key, 0.0)

    rows = sum(x.shape[0] for x in xs)
    assert delta(c.METRIC_BATCH_SIZE + "_sum") == rows
    runs = delta(c.METRIC_BATCH_SIZE + "_count")
    assert runs < len(xs), f"no batching happened: {runs} runs for {len(xs)} requests"
    assert delta(c.METRIC_QUEUE_DURATION + "_count") == len(xs)


async def test_mixed_shapes_and_errors_do_not_disturb_batches(clf_batched: RuntimeServer) -> None:
    good = np.ones((2, 4), dtype=np.float32)
    bodies = []
    for i in range(40):
        if i % 5 == 0:
            bodies.append(
                orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
            )
        elif i % 7 == 0:
            bodies.append(body(np.zeros((0, 4), np.float32), str(i)))  # zero rows: runs alone
        else:
            bodies.append(body(good, str(i)))
    responses = await fire(clf_batched.url + "/v2/models/clf/infer", bodies, concurrency=16)
    want = models.classifier_reference(models.classifier(0), good)
    for i, r in enumerate(responses):
        if i % 5 == 0:
            assert r.status_code == 400
        elif i % 7 == 0:
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["shape"] == [0, 3]
        else:
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"]).reshape(2, 3), want, rtol=1e-5)


@pytest.fixture(scope="module")
def erroring_batched(model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server(
        "bad", f"file://{model_files.erroring}", "--max-batch-size", "8", "--max-delay-ms", "20", log_dir=log_dir
    )
    yield s
    assert s.stop() == 0, s.log()


async def test_a_failing_request_does_not_fail_its_batch(erroring_batched: RuntimeServer) -> None:
    zeros = np.zeros((1, 4), dtype=np.float32)
    ones = np.ones((1, 4), dtype=np.float32)
    xs = [ones if i % 4 == 0 else zeros for i in range(32)]
    responses = await fire(
        erroring_batched.url + "/v2/models/bad/infer", [body(x, str(i)) for i, x in enumerate(xs)], 16
    )
    for i, r in enumerate(responses):
        if i % 4 == 0:
            assert r.status_code == 500, r.text
            assert "inference failed" in r.json()["error"]
        else:
            assert r.status_code == 200, r.text
    text = scrape(erroring_batched)
    assert any(k[0] == c.METRIC_REQUESTS_TOTAL and ("code", "500") in k[1] and v >= 8 for k, v in text.items())
