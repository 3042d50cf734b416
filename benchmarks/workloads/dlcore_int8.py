"""dlcore with int8 weights (inference only): the standard model built as ``dlcore_`` builds it, then
``model.quantize("int8")``: the CNN calibrated (``calibration_data``: 64 synthetic samples, static
max-abs input scales, int8 between the convolutions; the 1-channel first conv stays float32, as
``quantize`` keeps convolutions of GEMM depth < 32), the MLP, LSTM and GRU dynamic (per-row activation scales), as
ONNX Runtime's twin (``onnxruntime_int8``) quantizes them (static QDQ / dynamic). ``info`` holds the
saved .dlc file's size and the worker's memory.
"""
from . import _common, _keras_api
from .dlcore_ import _set_threads

REQUIRES = ("dlcore",)
NAME = "dlcore_int8"
CALIBRATION_SAMPLES = 64


def setup(threads):
    import dlcore as dl

    _set_threads(dl, threads)
    return {"threads": {"dl.config.num_threads": dl.config.num_threads()}}


def supports(spec):
    if spec["kind"] != "infer":
        return "the int8 variant runs the inference workloads"
    if spec["model_spec"]["kind"] not in ("cnn", "mlp", "lstm", "gru"):
        return f"int8 here covers the CNN, the MLP, the LSTM and the GRU, not the {spec['model_spec']['kind']}"
    return None


def calibration_data(spec):
    """The calibration samples both int8 variants use (seed 1: not the measured inputs)."""
    return _common.make_data(dict(spec, batch=CALIBRATION_SAMPLES), seed=1)[0]


class Runner:
    def __init__(self, spec):
        import os
        import tempfile
        import warnings

        import dlcore as dl

        dl.utils.set_random_seed(0)
        self.model = _keras_api.build_model(dl, spec["model_spec"])
        tmp = tempfile.TemporaryDirectory()
        float_path, path = os.path.join(tmp.name, "float.dlc"), os.path.join(tmp.name, "int8.dlc")
        self.model.save(float_path)
        if spec["model_spec"]["kind"] == "cnn":
            with warnings.catch_warnings():  # the 1-channel first conv stays float32 (conv_min_depth): said below
                warnings.simplefilter("ignore")
                self.model.quantize("int8", calibration_data=calibration_data(spec))
            how = f"int8 static (calibration_data: {CALIBRATION_SAMPLES} samples, max-abs)"
            if self.model.float_layers:
                how += f"; kept float32 (GEMM depth < 32): {', '.join(self.model.float_layers)}"
        else:
            self.model.quantize("int8")
            how = "int8 dynamic (per row)"
        self.x, _ = _common.make_data(spec)
        self.params = None  # quantized: the int8 kernels are not trainable
        self.step()
        self.model.save(path)
        self.info = _common.memory_info({"call": "model.predict_on_batch(x)", "quantization": how}, path, float_path)
        tmp.cleanup()

    def step(self):
        return self.model.predict_on_batch(self.x)


def build(spec):
    return Runner(spec)


def count_params(spec):
    return None


def cold_start(payload):
    raise RuntimeError("the int8 variant runs the inference workloads only")


def train_memory(payload):
    raise RuntimeError("the int8 variant is inference only")
