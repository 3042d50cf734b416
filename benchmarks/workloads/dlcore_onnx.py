"""dlcore running the ONNX file PyTorch exported (inference only): the same file ONNX Runtime runs
(``torch_.export_onnx``, made by the runner before any measurement), imported with
``dl.saving.load_onnx`` and called with ``predict_on_batch`` as native dlcore is. The CNN is
imported with ``channels_last=True`` and fed NHWC (dlcore's layout; the importer moves the
weights, so no transpose runs per call); the other models take their exported layout.
"""
from . import _common
from .dlcore_ import _set_threads

REQUIRES = ("dlcore", "onnx", "torch")
NAME = "dlcore_onnx"


def setup(threads):
    import dlcore as dl

    _set_threads(dl, threads)
    return {"threads": {"dl.config.num_threads": dl.config.num_threads()}}


def supports(spec):
    if spec["kind"] not in ("infer", "cold-start"):
        return "runs imported ONNX files, which are inference workloads here"
    if spec["model_spec"]["kind"] not in ("cnn", "mlp", "lstm", "gru"):
        return f"the {spec['model_spec']['kind']} export uses operators the importer does not take"
    if not spec.get("onnx_path"):
        return "no ONNX export (torch.onnx.export failed or torch missing)"
    return None


def _load(dl, spec):
    return dl.saving.load_onnx(spec["onnx_path"], channels_last=spec["model_spec"]["kind"] == "cnn")


class Runner:
    def __init__(self, spec):
        import dlcore as dl

        self.model = _load(dl, spec)
        self.x, _ = _common.make_data(spec)
        self.params = None  # the exported PyTorch model: its count is PyTorch's
        self.info = {"call": "model.predict_on_batch(x)", "model": "exported from PyTorch, dl.saving.load_onnx"}

    def step(self):
        return self.model.predict_on_batch(self.x)


def build(spec):
    return Runner(spec)


def cold_start(payload):
    clock = _common.Clock()
    import dlcore as dl

    _set_threads(dl, payload["threads"])
    clock.mark("import_s")
    spec = payload["spec"]
    model = _load(dl, spec)
    clock.mark("load_s" if spec.get("saved") else "build_s")  # importing the exported model is this variant's "build"
    x, _ = _common.make_data(spec)
    out = model.predict(x, verbose=0)
    clock.mark("predict_s")
    assert out.shape == (spec["batch"], spec["model_spec"]["classes"])
    _common.report({"phases": clock.phases, "inside_s": clock.total(),
                    "loaded": _common.loaded_heavy_modules()})


def count_params(spec):
    return None  # the exported PyTorch model: its count is PyTorch's


def train_memory(payload):
    raise RuntimeError("the ONNX-import variant is inference only")
