"""modeldeploy's ONNX Runtime inference server on the Open Inference Protocol v2."""
