"""ONNX Runtime running the PyTorch-exported model quantized by ``onnxruntime.quantization``: the CNN
with static QDQ quantization (per-channel int8 weights, uint8 activations, MinMax calibration on the
same 64 synthetic samples as ``dlcore_int8``), the MLP, LSTM and GRU with dynamic quantization (int8 weights), the
schemes ONNX Runtime documents for CNNs and for MLP/RNN models. ``info`` holds the quantized file's
size and the worker's memory.
"""
from . import _common
from .dlcore_int8 import calibration_data
from .onnxruntime_ import _nchw, _session

REQUIRES = ("onnxruntime", "onnx", "torch")
NAME = "onnxruntime_int8"

_threads = 1


def setup(threads):
    global _threads
    import onnxruntime  # noqa: F401

    _threads = int(threads)
    return {"threads": {"intra_op_num_threads": _threads, "inter_op_num_threads": 1}}


def supports(spec):
    if spec["kind"] != "infer":
        return "the int8 variant runs the inference workloads"
    if spec["model_spec"]["kind"] not in ("cnn", "mlp", "lstm", "gru"):
        return f"int8 here covers the CNN, the MLP, the LSTM and the GRU, not the {spec['model_spec']['kind']}"
    if not spec.get("onnx_path"):
        return "no ONNX export (torch.onnx.export failed or torch missing)"
    return None


def quantize(spec):
    """The quantized copy of the exported float model (made once per file); returns (path, how)."""
    import os

    from onnxruntime import quantization as q

    src = spec["onnx_path"]
    cnn = spec["model_spec"]["kind"] == "cnn"
    path = src[:-len(".onnx")] + (".int8-qdq.onnx" if cnn else ".int8-dynamic.onnx")
    if not os.path.exists(path):
        if cnn:
            samples = _nchw(calibration_data(spec), spec["model_spec"])

            class Reader(q.CalibrationDataReader):
                def __init__(self):
                    self.items = iter([{"x": samples[i:i + 1]} for i in range(len(samples))])

                def get_next(self):
                    return next(self.items, None)

            q.quantize_static(src, path, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
        else:
            q.quantize_dynamic(src, path, weight_type=q.QuantType.QInt8)
    how = ("static QDQ (per-channel int8 weights, uint8 activations, MinMax calibration)" if cnn
           else "dynamic (int8 weights)")
    return path, how


class Runner:
    def __init__(self, spec):
        path, how = quantize(spec)
        self.sess = _session(path, _threads)
        x, _ = _common.make_data(spec)
        self.feed = {"x": _nchw(x, spec["model_spec"])}
        self.params = None
        self.step()
        self.info = _common.memory_info({"call": "InferenceSession.run", "quantization": how,
                                         "model": "exported from PyTorch, onnxruntime.quantization"}, path,
                                        spec["onnx_path"])

    def step(self):
        return self.sess.run(None, self.feed)


def build(spec):
    return Runner(spec)


def count_params(spec):
    return None


def cold_start(payload):
    raise RuntimeError("the int8 variant runs the inference workloads only")


def train_memory(payload):
    raise RuntimeError("ONNX Runtime does not train")
