"""Which ONNX operators TensorRT's ONNX parser accepts (onnx-tensorrt's support matrix, `docs/operators.md`, TensorRT 10).

The offline check: the tests run it on every exported graph, so a graph TensorRT cannot parse is
caught on the training machine rather than on the device. Where TensorRT is installed, the engine
builder asks the installed parser instead (`supports_model`), which knows its own version.
"""
from __future__ import annotations

from pathlib import Path

import onnx

TENSORRT_ONNX_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid HardSwish Identity If ImageScaler
InstanceNormalization IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean Min Mul Neg Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform
RandomUniformLike Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze
Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split())


def unsupported_ops(path: str | Path) -> set[str]:
    """Operators in the graph at `path` that TensorRT's ONNX parser does not support."""
    model = onnx.load(str(path), load_external_data=False)
    return {node.op_type for node in model.graph.node} - TENSORRT_ONNX_OPS
