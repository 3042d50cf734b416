"""ONNX Runtime (inference only): runs the inference models exported from PyTorch
(``torch_.export_onnx``, done by the runner before any measurement). Session options: intra-op
threads = the common thread count, one inter-op thread, all graph optimizations. Inputs are NCHW
for the CNN, as exported.
"""
from . import _common

REQUIRES = ("onnxruntime", "onnx", "torch")
NAME = "onnxruntime"


def _session(path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


_threads = 1


def setup(threads):
    global _threads
    import onnxruntime  # noqa: F401  (fails here, not in the first build, when it is missing)

    _threads = int(threads)
    return {"threads": {"intra_op_num_threads": _threads, "inter_op_num_threads": 1}}


def supports(spec):
    if spec["kind"] == "attention":
        return "a bare attention op: no exported model to run"
    if spec["kind"] not in ("infer", "cold-start", "infer-memory"):
        return "ONNX Runtime is an inference engine"
    if not spec.get("onnx_path"):
        return "no ONNX export (torch.onnx.export failed or torch missing)"
    return None


def _nchw(x, model):
    """The exported model's input: NCHW for the CNN, int64 token ids for the transformer."""
    import numpy as np

    if model["kind"] == "transformer":
        return x.astype(np.int64)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if model["kind"] == "cnn" else x


class Runner:
    def __init__(self, spec):
        self.sess = _session(spec["onnx_path"], _threads)
        x, _ = _common.make_data(spec)
        self.feed = {"x": _nchw(x, spec["model_spec"])}
        self.params = None  # the exported PyTorch model: its count is PyTorch's
        self.info = {"call": "InferenceSession.run", "model": "exported from PyTorch"}

    def step(self):
        return self.sess.run(None, self.feed)


def build(spec):
    return Runner(spec)


def cold_start(payload):
    clock = _common.Clock()
    import onnxruntime  # noqa: F401

    clock.mark("import_s")
    spec = payload["spec"]
    sess = _session(spec["onnx_path"], payload["threads"])
    clock.mark("load_s" if spec.get("saved") else "build_s")  # loading the exported model is ONNX Runtime's "build"
    x, _ = _common.make_data(spec)
    out = sess.run(None, {"x": _nchw(x, spec["model_spec"])})[0]
    clock.mark("predict_s")
    assert out.shape == (spec["batch"], spec["model_spec"]["classes"])
    _common.report({"phases": clock.phases, "inside_s": clock.total(),
                    "loaded": _common.loaded_heavy_modules()})


def count_params(spec):
    return None  # the exported PyTorch model: its count is PyTorch's


def infer_memory(payload):
    def fresh_model(spec):
        sess = _session(spec["onnx_path"], payload["threads"])
        return lambda x: sess.run(None, {"x": _nchw(x, spec["model_spec"])})[0]
    _common.infer_memory(payload, fresh_model)


def train_memory(payload):
    raise RuntimeError("ONNX Runtime does not train")
