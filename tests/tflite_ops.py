"""Single-operator .tflite models, written with the TFLite schema bindings that ship in the
tflite-micro wheel (no TensorFlow), and run in tflite-micro's interpreter."""

import flatbuffers
import numpy as np
from tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

INT8, INT16, INT32 = S.TensorType.INT8, S.TensorType.INT16, S.TensorType.INT32


def tensor(shape, ttype, scale, zp, buffer=0, qdim=0, name="t"):
    t = S.TensorT()
    t.shape, t.type, t.buffer, t.name = list(shape), ttype, buffer, name
    q = S.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
    q.quantizedDimension = qdim
    t.quantization = q
    return t


def single_op_model(op: int, tensors: list, inputs: list[int], outputs: list[int],
                    constants: dict[int, np.ndarray], options_type=0, options=None) -> bytes:
    """tensors[i] gets buffer i+1; constants (tensor index -> array) fill those buffers."""
    m = S.ModelT()
    m.version = 3
    code = S.OperatorCodeT()
    code.builtinCode = op
    code.deprecatedBuiltinCode = min(op, 127)
    code.version = 1
    m.operatorCodes = [code]
    buffers = [S.BufferT()]
    for i, t in enumerate(tensors):
        b = S.BufferT()
        if i in constants:
            b.data = np.ascontiguousarray(constants[i]).tobytes()
        t.buffer = i + 1
        buffers.append(b)
    m.buffers = buffers
    sg = S.SubGraphT()
    sg.tensors = tensors
    sg.inputs, sg.outputs = inputs, outputs
    o = S.OperatorT()
    o.opcodeIndex, o.inputs, o.outputs = 0, [*inputs, *[i for i in sorted(constants)]], outputs
    o.builtinOptionsType, o.builtinOptions = options_type, options
    sg.operators = [o]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


class Runner:
    """One interpreter, many invocations (inputs are set again before every invoke)."""

    def __init__(self, model: bytes):
        self.interp = runtime.Interpreter.from_bytes(model)

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        for i, x in enumerate(inputs):
            self.interp.set_input(x, i)
        self.interp.invoke()
        return self.interp.get_output(0)
