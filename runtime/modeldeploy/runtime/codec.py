"""Open Inference Protocol v2 tensor codec: JSON tensors and the binary tensor data extension.

Decoding turns a request body into numpy arrays checked against the model's signature; every
problem with the client's input raises `InferError` with a 4xx status and the rejection reason
of the contract, never anything else. Encoding turns output arrays into a v2 response body, with
outputs in binary form where the request asked for it.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.limits import TensorLimits

#: OIP datatype -> numpy dtype (BYTES: object arrays of str, which is what ONNX Runtime takes)
OIP_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

#: ONNX Runtime type string -> OIP datatype
ORT_TO_OIP: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

_LE_DTYPES: dict[str, np.dtype[Any]] = {k: v.newbyteorder("<") for k, v in OIP_TO_NUMPY.items() if k != "BYTES"}
_ORJSON_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_U32 = struct.Struct("<I")
_MAX_DIMS = 32
#: no limit beyond the body's own size (library use; the server passes the configured limits)
UNLIMITED = TensorLimits(max_elements=2**62, max_bytes_elements=2**62, max_bytes_total=2**62)


class InferError(Exception):
    """A request that cannot be served. `reason` is a contract rejection reason for 4xx."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message})


def bad_request(message: str, reason: str) -> InferError:
    return InferError(400, message, reason)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of the model: name, OIP datatype, shape with -1 for dynamic dims."""

    name: str
    datatype: str
    shape: tuple[int, ...] | None  # None: rank unknown

    @property
    def dtype(self) -> np.dtype[Any]:
        return OIP_TO_NUMPY[self.datatype]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape or [])}


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(slots=True)
class DecodedRequest:
    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    #: None: every output of the model
    outputs: list[RequestedOutput] | None
    #: request-level `binary_data_output`: the default form of outputs not listed or not specified
    binary_output: bool


# --------------------------------------------------------------------------------------- decoding


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo a request Content-Encoding (gzip, deflate), never producing more than `limit` bytes."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise InferError(415, f"unsupported content-encoding {encoding!r}", c.REJECTION_UNSUPPORTED)
    d = zlib.decompressobj(wbits=47 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise bad_request(f"body is not valid {enc}: {e}", c.REJECTION_MALFORMED) from None
    if len(out) > limit:
        raise InferError(413, f"decompressed body exceeds {limit} bytes", c.REJECTION_BODY_TOO_LARGE)
    return out


class _BytesBudget:
    """BYTES elements and their bytes left for the rest of one request (--max-bytes-*, 413)."""

    __slots__ = ("bytes_left", "elements_left", "limits")

    def __init__(self, limits: TensorLimits) -> None:
        self.limits = limits
        self.elements_left = limits.max_bytes_elements
        self.bytes_left = limits.max_bytes_total

    def take(self, name: str, elements: int, size: int) -> None:
        self.elements_left -= elements
        self.bytes_left -= size
        if self.elements_left < 0:
            raise InferError(
                413,
                f"input {name!r}: more than {self.limits.max_bytes_elements} BYTES elements in the request "
                "(--max-bytes-elements)",
                c.REJECTION_BODY_TOO_LARGE,
            )
        if self.bytes_left < 0:
            raise InferError(
                413,
                f"input {name!r}: BYTES elements exceed {self.limits.max_bytes_total} bytes in the request "
                "(--max-bytes-total)",
                c.REJECTION_BODY_TOO_LARGE,
            )


def decode_request(
    body: bytes,
    header_length: int | None,
    inputs: Mapping[str, TensorSpec],
    outputs: Mapping[str, TensorSpec],
    limits: TensorLimits = UNLIMITED,
) -> DecodedRequest:
    """Parse and check one v2 inference request against the model signature.

    `header_length` is the value of the `Inference-Header-Content-Length` header when present:
    the JSON part is then `body[:header_length]` and binary tensor data follows it. `limits` bounds
    each tensor's dimensions and element count (400) and the request's BYTES elements (413).
    """
    if header_length is None:
        json_part, binary = body, b""
    else:
        if header_length < 0 or header_length > len(body):
            raise bad_request(
                f"Inference-Header-Content-Length {header_length} is outside the body of {len(body)} bytes",
                c.REJECTION_MALFORMED,
            )
        json_part, binary = body[:header_length], body[header_length:]
    try:
        req = orjson.loads(json_part)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"request body is not valid JSON: {e}", c.REJECTION_MALFORMED) from None
    if type(req) is not dict:
        raise bad_request("request body must be a JSON object", c.REJECTION_MALFORMED)

    rid = req.get("id")
    if rid is not None and type(rid) is not str:
        raise bad_request("'id' must be a string", c.REJECTION_MALFORMED)
    params = req.get("parameters")
    binary_output = False
    if params is not None:
        if type(params) is not dict:
            raise bad_request("'parameters' must be an object", c.REJECTION_MALFORMED)
        bdo = params.get("binary_data_output", False)
        if type(bdo) is not bool:
            raise bad_request("parameter 'binary_data_output' must be a boolean", c.REJECTION_MALFORMED)
        binary_output = bdo

    raw_inputs = req.get("inputs")
    if type(raw_inputs) is not list:
        raise bad_request("'inputs' must be a list of tensors", c.REJECTION_MALFORMED)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    budget: _BytesBudget | None = None  # made at the first BYTES input
    for t in raw_inputs:
        if type(t) is not dict:
            raise bad_request("each entry of 'inputs' must be an object", c.REJECTION_MALFORMED)
        name = t.get("name")
        if type(name) is not str:
            raise bad_request("each input needs a string 'name'", c.REJECTION_MALFORMED)
        spec = inputs.get(name)
        if spec is None:
            raise bad_request(
                f"unknown input {name!r}; the model's inputs are {sorted(inputs)}", c.REJECTION_UNKNOWN_INPUT
            )
        if name in arrays:
            raise bad_request(f"input {name!r} is given twice", c.REJECTION_MALFORMED)
        if budget is None and spec.datatype == "BYTES":
            budget = _BytesBudget(limits)
        arr, used = _decode_tensor(t, spec, binary, offset, limits.max_elements, budget)
        offset += used
        arrays[name] = arr
    if offset != len(binary):
        raise bad_request(
            f"the body holds {len(binary)} bytes of binary tensor data but the inputs declare {offset}",
            c.REJECTION_MALFORMED,
        )
    if len(arrays) != len(inputs):
        missing = sorted(set(inputs) - set(arrays))
        raise bad_request(f"missing input(s) {missing}", c.REJECTION_MISSING_INPUT)

    raw_outputs = req.get("outputs")
    requested = None if raw_outputs is None else _decode_outputs(raw_outputs, outputs, binary_output)
    return DecodedRequest(rid, arrays, requested, binary_output)


def _decode_outputs(raw: Any, outputs: Mapping[str, TensorSpec], binary_default: bool) -> list[RequestedOutput]:
    if type(raw) is not list:
        raise bad_request("'outputs' must be a list", c.REJECTION_MALFORMED)
    result: list[RequestedOutput] = []
    seen: set[str] = set()
    for o in raw:
        if type(o) is not dict or type(o.get("name")) is not str:
            raise bad_request("each entry of 'outputs' must be an object with a string 'name'", c.REJECTION_MALFORMED)
        name: str = o["name"]
        if name not in outputs:
            raise bad_request(
                f"unknown output {name!r}; the model's outputs are {sorted(outputs)}", c.REJECTION_UNKNOWN_OUTPUT
            )
        if name in seen:
            raise bad_request(f"output {name!r} is requested twice", c.REJECTION_MALFORMED)
        seen.add(name)
        binary = binary_default
        p = o.get("parameters")
        if p is not None:
            if type(p) is not dict:
                raise bad_request(f"parameters of output {name!r} must be an object", c.REJECTION_MALFORMED)
            b = p.get("binary_data", binary_default)
            if type(b) is not bool:
                raise bad_request(f"'binary_data' of output {name!r} must be a boolean", c.REJECTION_MALFORMED)
            binary = b
            cc = p.get("classification", 0)
            if cc not in (0, None, False):
                raise bad_request(
                    "the classification extension is not supported; request the raw output",
                    c.REJECTION_UNSUPPORTED,
                )
        result.append(RequestedOutput(name, binary))
    return result


def _check_shape(raw_shape: Any, spec: TensorSpec, max_elements: int) -> tuple[tuple[int, ...], int]:
    if type(raw_shape) is not list or len(raw_shape) > _MAX_DIMS:
        raise bad_request(f"input {spec.name!r}: 'shape' must be a list of integers", c.REJECTION_SHAPE)
    count = 1
    for d in raw_shape:
        if type(d) is not int or d < 0:
            raise bad_request(
                f"input {spec.name!r}: 'shape' must be a list of non-negative integers, got {_short_shape(raw_shape)}",
                c.REJECTION_SHAPE,
            )
        count *= d
    # also beside a zero dimension: numpy and the model would size buffers by the others
    if count > max_elements or (count == 0 and math.prod(d for d in raw_shape if d) > max_elements):
        raise bad_request(
            f"input {spec.name!r}: shape {_short_shape(raw_shape)} is over the limit of {max_elements} "
            "elements (--max-tensor-elements)",
            c.REJECTION_SHAPE,
        )
    expected = spec.shape
    if expected is not None:
        # a loop, not any() over a generator: this runs per input of every request
        matches = len(raw_shape) == len(expected)
        if matches:
            for e, d in zip(expected, raw_shape, strict=True):
                if e >= 0 and e != d:
                    matches = False
                    break
        if not matches:
            raise bad_request(
                f"input {spec.name!r}: shape {raw_shape} does not match the model's {list(expected)} (-1 = any size)",
                c.REJECTION_SHAPE,
            )
    return tuple(raw_shape), count


def _short_shape(raw_shape: list[Any]) -> str:
    text = str(raw_shape)
    return text if len(text) <= 200 else text[:200] + "...]"


def _decode_tensor(  # noqa: PLR0917  (positional: called per input on the hot path)
    t: dict[str, Any],
    spec: TensorSpec,
    binary: bytes,
    offset: int,
    max_elements: int,
    budget: _BytesBudget | None,
) -> tuple[np.ndarray[Any, Any], int]:
    name = spec.name
    dt = t.get("datatype")
    if dt != spec.datatype:
        if dt not in OIP_TO_NUMPY:
            raise bad_request(
                f"input {name!r}: unknown datatype {dt!r}; expected {spec.datatype}", c.REJECTION_DATATYPE
            )
        raise bad_request(
            f"input {name!r}: datatype {dt} does not match the model's {spec.datatype}", c.REJECTION_DATATYPE
        )
    shape, count = _check_shape(t.get("shape"), spec, max_elements)
    if budget is not None and spec.datatype == "BYTES":
        budget.take(name, count, 0)
    params = t.get("parameters")
    size = None
    if params is not None:
        if type(params) is not dict:
            raise bad_request(f"input {name!r}: 'parameters' must be an object", c.REJECTION_MALFORMED)
        size = params.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise bad_request(
                f"input {name!r}: 'binary_data_size' must be a non-negative integer", c.REJECTION_MALFORMED
            )
        if "data" in t:
            raise bad_request(f"input {name!r} has both 'data' and 'binary_data_size'", c.REJECTION_MALFORMED)
        if offset + size > len(binary):
            raise bad_request(
                f"input {name!r}: binary_data_size {size} runs past the end of the body", c.REJECTION_MALFORMED
            )
        chunk = binary[offset : offset + size]
        if budget is not None and spec.datatype == "BYTES":
            budget.take(name, 0, max(0, size - 4 * count))
        return _from_binary(chunk, spec, shape, count), size
    if "data" not in t:
        raise bad_request(f"input {name!r} has no 'data'", c.REJECTION_DATA)
    return _from_json(t["data"], spec, shape, count, budget), 0


def _from_binary(chunk: bytes, spec: TensorSpec, shape: tuple[int, ...], count: int) -> np.ndarray[Any, Any]:
    if spec.datatype == "BYTES":
        items = deserialize_bytes(chunk, spec.name, count)
        if len(items) != count:
            raise bad_request(
                f"input {spec.name!r}: {len(items)} elements in binary data, shape {list(shape)} needs {count}",
                c.REJECTION_DATA,
            )
        return _strings(items, spec.name).reshape(shape)
    dtype = _LE_DTYPES[spec.datatype]
    if len(chunk) != count * dtype.itemsize:
        raise bad_request(
            f"input {spec.name!r}: {len(chunk)} bytes of binary data, shape {list(shape)} of "
            f"{spec.datatype} needs {count * dtype.itemsize}",
            c.REJECTION_DATA,
        )
    arr = np.frombuffer(chunk, dtype=dtype)
    if spec.datatype == "BOOL" and arr.size and np.any(arr.view(np.uint8) > 1):
        raise bad_request(f"input {spec.name!r}: BOOL bytes must be 0 or 1", c.REJECTION_DATA)
    return arr.reshape(shape)


def _from_json(
    data: Any, spec: TensorSpec, shape: tuple[int, ...], count: int, budget: _BytesBudget | None
) -> np.ndarray[Any, Any]:
    if type(data) is not list:
        data = [data]
    if spec.datatype == "BYTES":
        flat = _flatten(data, spec.name)
        if len(flat) != count:
            raise bad_request(
                f"input {spec.name!r}: {len(flat)} elements in 'data', shape {list(shape)} needs {count}",
                c.REJECTION_DATA,
            )
        if budget is not None:
            budget.take(spec.name, 0, sum(len(v) for v in flat if type(v) is str))
        return _strings(flat, spec.name).reshape(shape)
    dtype = OIP_TO_NUMPY[spec.datatype]  # (spec.dtype, without the property's call)
    arr = _flat_numeric(data, spec.datatype, dtype, count)
    if arr is not None:
        if dtype.kind in "iu" and arr.size and _has_non_integral(data, spec.datatype):
            raise bad_request(f"input {spec.name!r}: {spec.datatype} data must hold integers", c.REJECTION_DATA)
        return arr.reshape(shape)
    try:
        arr = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise bad_request(
            f"input {spec.name!r}: 'data' is not a (nested) list of {spec.datatype} values: {e}", c.REJECTION_DATA
        ) from None
    if arr.size != count:
        raise bad_request(
            f"input {spec.name!r}: {arr.size} elements in 'data', shape {list(shape)} needs {count}",
            c.REJECTION_DATA,
        )
    if arr.dtype != dtype:  # pragma: no cover - numpy honours dtype=
        raise bad_request(f"input {spec.name!r}: data is not {spec.datatype}", c.REJECTION_DATA)
    if dtype.kind in "iub" and arr.size and _has_non_integral(data, spec.datatype):
        raise bad_request(
            f"input {spec.name!r}: {spec.datatype} data must hold "
            f"{'booleans' if spec.datatype == 'BOOL' else 'integers'}",
            c.REJECTION_DATA,
        )
    return arr.reshape(shape) if arr.shape != shape else arr


#: datatypes whose flat JSON data is converted with np.fromiter (BOOL, FP16 and BYTES keep np.asarray)
_FROMITER_DATATYPES = frozenset(
    ("FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
)


def _flat_numeric(data: list[Any], datatype: str, dtype: np.dtype[Any], count: int) -> np.ndarray[Any, Any] | None:
    """The common case, a flat list of exactly `count` numbers, converted with np.fromiter: it skips
    np.asarray's discovery of the nesting and element types (for the conv model's 12,288 floats,
    about 30% less time than np.asarray). It stores each element with the same per-element
    conversion as np.asarray (values and failures alike); anything else (a nested list, a wrong
    length, an element numpy refuses) returns None and goes the np.asarray way, which gives the
    answer and every error message as before."""
    if datatype not in _FROMITER_DATATYPES or len(data) != count or not count:
        return None
    try:
        return np.fromiter(data, dtype, count)
    except (ValueError, TypeError, OverflowError):
        return None


def _has_non_integral(data: list[Any], datatype: str) -> bool:
    """numpy would silently truncate 1.5 to 1 or turn 7 into True: refuse that for exact types."""
    want: tuple[type, ...] = (bool,) if datatype == "BOOL" else (int,)
    stack: list[Any] = [data]
    while stack:
        cur = stack.pop()
        for v in cur:
            if type(v) is list:
                stack.append(v)
            elif type(v) not in want:
                return True
    return False


def _flatten(data: list[Any], name: str) -> list[Any]:
    out: list[Any] = []
    stack: list[tuple[list[Any], int]] = [(data, 0)]
    while stack:
        cur, i = stack.pop()
        while i < len(cur):
            v = cur[i]
            i += 1
            if type(v) is list:
                if len(stack) > _MAX_DIMS:
                    raise bad_request(f"input {name!r}: data nested too deep", c.REJECTION_DATA)
                stack.append((cur, i))
                cur, i = v, 0
            else:
                out.append(v)
    return out


def _strings(items: Sequence[Any], name: str) -> np.ndarray[Any, Any]:
    arr = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        if type(v) is str:
            arr[i] = v
        elif type(v) is bytes:
            try:
                arr[i] = v.decode("utf-8")
            except UnicodeDecodeError:
                raise bad_request(f"input {name!r}: element {i} is not valid UTF-8", c.REJECTION_DATA) from None
        else:
            raise bad_request(
                f"input {name!r}: BYTES data must hold strings, element {i} is {type(v).__name__}", c.REJECTION_DATA
            )
    return arr


def deserialize_bytes(chunk: bytes, name: str = "?", most: int | None = None) -> list[bytes]:
    """The binary form of a BYTES tensor: each element is a 4-byte little-endian length, then the bytes.
    Stops after `most` + 1 elements (the caller reports the miscount) so that a body of empty elements
    cannot make a list larger than asked for."""
    items: list[bytes] = []
    i, n = 0, len(chunk)
    while i < n:
        if most is not None and len(items) > most:
            break
        if i + 4 > n:
            raise bad_request(f"input {name!r}: truncated length prefix in BYTES data", c.REJECTION_DATA)
        (ln,) = _U32.unpack_from(chunk, i)
        i += 4
        if i + ln > n:
            raise bad_request(f"input {name!r}: BYTES element runs past the end of its data", c.REJECTION_DATA)
        items.append(chunk[i : i + ln])
        i += ln
    return items


def serialize_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    parts: list[bytes] = []
    for v in arr.ravel():
        b = v if isinstance(v, bytes) else str(v).encode("utf-8")
        parts.append(_U32.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


# --------------------------------------------------------------------------------------- encoding


def _json_data(arr: np.ndarray[Any, Any], datatype: str) -> Any:
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
    flat = arr.ravel()
    if not flat.flags.c_contiguous or flat.dtype.byteorder not in "=|":
        flat = np.ascontiguousarray(flat).astype(flat.dtype.newbyteorder("="), copy=False)
    return flat


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[TensorSpec, np.ndarray[Any, Any], bool]],
) -> tuple[bytes, int | None]:
    """A v2 response. Returns the body and, when some output is binary, the JSON header's length."""
    out_list: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for spec, arr, binary in outputs:
        entry: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": list(arr.shape)}
        if binary:
            if spec.datatype == "BYTES":
                blob = serialize_bytes(arr)
            else:
                blob = np.ascontiguousarray(arr, dtype=_LE_DTYPES[spec.datatype]).tobytes()
            blobs.append(blob)
            entry["parameters"] = {"binary_data_size": len(blob)}
        else:
            entry["data"] = _json_data(arr, spec.datatype)
        out_list.append(entry)
    resp: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": out_list}
    if request_id is not None:
        resp["id"] = request_id
    head = orjson.dumps(resp, option=_ORJSON_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
