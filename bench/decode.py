"""Micro-benchmark: decoding the conv model's v2 JSON body (1x3x64x64 FP32, 241 kB) into numpy.

Prints microseconds per decode (median of rounds, the rounds interleaved so machine drift hits
every variant alike) for the runtime's `decode_request`, after and before the np.fromiter path
(``before``: with `codec._flat_numeric` switched off, i.e. np.asarray as until then), and for the
bare candidate paths:

- ``orjson+asarray``: orjson.loads of the body, then np.asarray of the data list
- ``orjson+fromiter``: the same parse, then np.fromiter over the flat list with the known count
- ``regex+fromstring``: locate the data array in the raw body, np.fromstring(..., sep=",") on it
  (numpy's text parser: tried and dropped, several times slower than orjson)

Then a paired A/B of `decode_request` after/before: `--pairs` pairs of single decodes, the order
within a pair alternating; prints p10/p25/p50/min of each and how many pairs the new path won.

    .venv/bin/python bench/decode.py [--rounds 15] [--n 50] [--pairs 1500]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from modeldeploy.runtime import codec
from modeldeploy.runtime.codec import TensorSpec, decode_request

SHAPE = (1, 3, 64, 64)
_DATA = re.compile(rb'"data"\s*:\s*\[([0-9eE+\-.,\s]*)\]')


def conv_body(seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": list(SHAPE), "data": x.ravel().tolist()}
    return orjson.dumps({"inputs": [tensor]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--n", type=int, default=50, help="decodes per round and variant")
    ap.add_argument("--pairs", type=int, default=1500, help="single-decode pairs of the after/before A/B")
    args = ap.parse_args()
    body = conv_body()
    count = int(np.prod(SHAPE))
    inputs = {"input": TensorSpec("input", "FP32", (-1, 3, 64, 64))}
    outputs = {"output": TensorSpec("output", "FP32", (-1, 10))}

    def runtime() -> Any:
        return decode_request(body, None, inputs, outputs)

    fast = codec._flat_numeric

    def runtime_before() -> Any:
        codec._flat_numeric = lambda *a: None
        try:
            return decode_request(body, None, inputs, outputs)
        finally:
            codec._flat_numeric = fast

    def orjson_asarray() -> Any:
        return np.asarray(orjson.loads(body)["inputs"][0]["data"], dtype=np.float32).reshape(SHAPE)

    def orjson_fromiter() -> Any:
        return np.fromiter(orjson.loads(body)["inputs"][0]["data"], np.float32, count).reshape(SHAPE)

    parsed = orjson.loads(body)["inputs"][0]["data"]

    def convert_asarray() -> Any:
        return np.asarray(parsed, dtype=np.float32).reshape(SHAPE)

    def convert_fromiter() -> Any:
        return np.fromiter(parsed, np.float32, count).reshape(SHAPE)

    def regex_fromstring() -> Any:
        m = _DATA.search(body)
        assert m is not None
        return np.fromstring(m.group(1), dtype=np.float64, sep=",").astype(np.float32).reshape(SHAPE)

    variants: dict[str, Callable[[], Any]] = {
        "decode_request (after)": runtime,
        "decode_request (before)": runtime_before,
        "orjson+asarray": orjson_asarray,
        "orjson+fromiter": orjson_fromiter,
        "regex+fromstring": regex_fromstring,
        "list->array: asarray": convert_asarray,
        "list->array: fromiter": convert_fromiter,
    }
    ref = orjson_asarray()
    for name, f in variants.items():
        got = f()
        got = got.inputs["input"] if hasattr(got, "inputs") else got
        assert np.array_equal(got, ref), name
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.n):
                f()
            times[name].append((time.perf_counter() - t0) / args.n * 1e6)
    print(f"conv JSON body: {len(body)} bytes, {count} FP32 values; {args.rounds} rounds x {args.n} decodes")
    for name, ts in times.items():
        print(f"{name:26s} median {statistics.median(ts):8.1f} us  min {min(ts):8.1f} us")

    paired: dict[str, list[float]] = {"after": [], "before": []}
    for i in range(args.pairs):
        order = [("after", runtime), ("before", runtime_before)]
        for name, f in order if i % 2 else order[::-1]:
            t0 = time.perf_counter()
            f()
            paired[name].append((time.perf_counter() - t0) * 1e6)
    won = sum(a < b for a, b in zip(paired["after"], paired["before"], strict=True))
    print(f"paired A/B of decode_request, {args.pairs} pairs of single decodes:")
    for name, ts in paired.items():
        ts.sort()
        p10, p25, p50 = (ts[int(len(ts) * q)] for q in (0.1, 0.25, 0.5))
        print(f"  {name:7s} p10 {p10:7.1f} us  p25 {p25:7.1f} us  p50 {p50:7.1f} us  min {ts[0]:7.1f} us")
    print(f"  pairs where after was faster: {won} / {args.pairs}")


if __name__ == "__main__":
    main()
