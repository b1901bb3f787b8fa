#!/usr/bin/env python3
"""Loads a protoclust ONNX export in onnxruntime and compares its features with protoclust's.

    scripts/onnx_check.py MODEL.onnx INPUT.f32 N,3,H,W EXPECTED.f32 [TOLERANCE]

INPUT.f32 / EXPECTED.f32 are raw little-endian float32 arrays (images, features). Exits 0 when
onnx.checker accepts the model and the largest absolute difference is within TOLERANCE
(default 1e-4) times the largest expected magnitude (float32 summation order differs between
runtimes), 1 otherwise, 3 when onnx/onnxruntime are not installed.
"""
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print(f"onnx_check: {e} (pip install onnx onnxruntime numpy)", file=sys.stderr)
    sys.exit(3)

model, inp, shape, expected = sys.argv[1:5]
tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
onnx.checker.check_model(onnx.load(model), full_check=True)
x = np.fromfile(inp, dtype="<f4").reshape([int(d) for d in shape.split(",")])
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
(y,) = sess.run(None, {sess.get_inputs()[0].name: x})
want = np.fromfile(expected, dtype="<f4").reshape(y.shape)
diff = float(np.abs(y - want).max())
scale = max(1.0, float(np.abs(want).max()))
print(
    f"onnx_check: onnxruntime {ort.__version__}, output {tuple(y.shape)}, "
    f"max |diff| {diff:.3g}, largest |feature| {scale:.3g}, relative {diff / scale:.3g}"
)
sys.exit(0 if diff <= tol * scale else 1)
