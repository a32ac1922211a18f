"""ONNX models built with onnx.helper, for the runtime tests and the cluster tests.

Every builder returns serialized model bytes; `write_model(path, data)` writes them and returns
the sha256. The classifier family shares one signature: input `input` FP32 [N, 4] and output
`probabilities` FP32 [N, 3] (a softmax), with a dynamic batch dimension N:

- `classifier(seed)`: a tiny MLP; two seeds give different class mixes on the same inputs.
- `slow_classifier(seed, layers, width)`: the same signature with far more compute per row
  (a chain of width x width MatMuls), so its latency is clearly higher.
- `diverging_classifier(seed, threshold)`: `classifier(seed)` with another argmax on the rows whose
  first feature passes the threshold (about 10% of N(0, 1) rows by default).
- `erroring_classifier(seed)`: passes warm-up on zeros but fails inside ONNX Runtime for any
  input with a non-zero value (a Gather whose index grows with the input goes out of range), so
  the server answers 500 for real.

`echo_all_types()` has one Identity input/output pair per OIP datatype, for the codec tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

INPUT = "input"
OUTPUT = "probabilities"
FEATURES = 4
CLASSES = 3

#: OIP datatype -> ONNX element type (every type ONNX Runtime serves over v2)
OIP_TO_ONNX = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _model(graph: onnx.GraphProto) -> bytes:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modeldeploy-tests")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    data: bytes = m.SerializeToString()
    return data


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr, name)


def _io() -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    return (
        helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", FEATURES]),
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", CLASSES]),
    )


def _classifier_weights(seed: int, hidden: int = 16) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    return [
        _init("w1", rng.normal(0, 1, (FEATURES, hidden)).astype(np.float32)),
        _init("b1", rng.normal(0, 0.5, (hidden,)).astype(np.float32)),
        _init("w2", rng.normal(0, 1, (hidden, CLASSES)).astype(np.float32)),
        # a seed-dependent bias skews the class mix, so two versions disagree visibly
        _init("b2", rng.normal(0, 2.0, (CLASSES,)).astype(np.float32)),
    ]


def classifier(seed: int = 0) -> bytes:
    """Tiny MLP 4-16-3 with softmax, dynamic batch."""
    inp, out = _io()
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["h1r"]),
        helper.make_node("MatMul", ["h1r", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    return _model(helper.make_graph(nodes, f"classifier_{seed}", [inp], [out], _classifier_weights(seed)))


def slow_classifier(seed: int = 0, layers: int = 16, width: int = 256) -> bytes:
    """Same signature; each row becomes a width x width matrix multiplied `layers` times."""
    rng = np.random.default_rng(seed)
    inp, out = _io()
    inits = [
        _init("expand_shape", np.array([1, width, FEATURES], dtype=np.int64)),
        _init("axes1", np.array([1], dtype=np.int64)),
        _init("w_in", rng.normal(0, 0.5, (FEATURES, width)).astype(np.float32)),
        _init("w_sq", (rng.normal(0, 1, (width, width)) / np.sqrt(width)).astype(np.float32)),
        _init("w_out", rng.normal(0, 1, (width, CLASSES)).astype(np.float32)),
        _init("b_out", rng.normal(0, 2.0, (CLASSES,)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Unsqueeze", [INPUT, "axes1"], ["x3"]),  # [N,1,4]
        helper.make_node("Expand", ["x3", "expand_shape"], ["xe"]),  # [N,width,4]
        helper.make_node("MatMul", ["xe", "w_in"], ["h0"]),  # [N,width,width]
    ]
    prev = "h0"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, "w_sq"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        prev = f"t{i}"
    nodes += [
        helper.make_node("ReduceMean", [prev], ["pooled"], axes=[2], keepdims=0),  # [N,width]
        helper.make_node("MatMul", ["pooled", "w_out"], ["lo"]),
        helper.make_node("Add", ["lo", "b_out"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    return _model(helper.make_graph(nodes, f"slow_{seed}", [inp], [out], inits))


def diverging_classifier(seed: int = 0, threshold: float = 1.2816) -> bytes:
    """`classifier(seed)` except on rows whose first feature exceeds `threshold`, where the logits are
    rotated by one class, so the argmax always differs there (for features drawn from N(0, 1), the
    default threshold is the 90th percentile: about 10% of rows differ)."""
    inp, out = _io()
    inits = [
        *_classifier_weights(seed),
        _init("starts", np.array([0], dtype=np.int64)),
        _init("ends", np.array([1], dtype=np.int64)),
        _init("axes", np.array([1], dtype=np.int64)),
        _init("threshold", np.array(threshold, dtype=np.float32)),
        _init("rotation", np.array([(k + 1) % CLASSES for k in range(CLASSES)], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["h1r"]),
        helper.make_node("MatMul", ["h1r", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["logits"]),
        helper.make_node("Gather", ["logits", "rotation"], ["rotated"], axis=1),
        helper.make_node("Slice", [INPUT, "starts", "ends", "axes"], ["first"]),  # [N, 1]
        helper.make_node("Greater", ["first", "threshold"], ["diverge"]),
        helper.make_node("Where", ["diverge", "rotated", "logits"], ["chosen"]),
        helper.make_node("Softmax", ["chosen"], [OUTPUT], axis=-1),
    ]
    return _model(helper.make_graph(nodes, f"diverging_{seed}", [inp], [out], inits))


def erroring_classifier(seed: int = 0) -> bytes:
    """Same signature; zeros work (warm-up passes), any non-zero input fails inside Gather."""
    inp, out = _io()
    inits = [
        *_classifier_weights(seed),
        _init("table", np.zeros((1,), dtype=np.float32)),
        _init("scale", np.array(1000.0, dtype=np.float32)),
    ]
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["h1r"]),
        helper.make_node("MatMul", ["h1r", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["logits0"]),
        # index = int64(sum(|input|) * 1000): 0 for zeros, out of range of `table` otherwise
        helper.make_node("Abs", [INPUT], ["absx"]),
        helper.make_node("ReduceSum", ["absx"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "scale"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["picked"], axis=0),  # scalar
        helper.make_node("Add", ["logits0", "picked"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    return _model(helper.make_graph(nodes, f"erroring_{seed}", [inp], [out], inits))


def echo_all_types() -> bytes:
    """For each OIP datatype T: input `in_T` [N, -1] -> Identity -> output `out_T`."""
    inputs, outputs, nodes = [], [], []
    for oip, et in OIP_TO_ONNX.items():
        inputs.append(helper.make_tensor_value_info(f"in_{oip}", et, ["N", "K"]))
        outputs.append(helper.make_tensor_value_info(f"out_{oip}", et, ["N", "K"]))
        nodes.append(helper.make_node("Identity", [f"in_{oip}"], [f"out_{oip}"]))
    return _model(helper.make_graph(nodes, "echo_all_types", inputs, outputs))


def fixed_shape_adder() -> bytes:
    """No dynamic batch: `a` FP32 [2, 3] + `b` FP32 [2, 3] -> `sum` and `diff` (batching stays off)."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [2, 3])
    d = helper.make_tensor_value_info("diff", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Sub", ["a", "b"], ["diff"])]
    return _model(helper.make_graph(nodes, "adder", [a, b], [s, d]))


def with_sequence_output() -> bytes:
    """`x` FP32 [N, 4] -> `y` (Identity) and `seq` (a sequence, as sklearn-onnx's ZipMap gives): not a tensor."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    seq = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("SequenceConstruct", ["x"], ["seq"])]
    return _model(helper.make_graph(nodes, "with_sequence", [x], [y, seq]))


def write_model(path: Path, data: bytes) -> str:
    """Write the model and return its sha256 hex digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def classifier_reference(data: bytes, x: np.ndarray) -> np.ndarray:
    """The model's answer computed in-process with onnxruntime (the tests' oracle)."""
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, {INPUT: x.astype(np.float32)})[0]
    return out
