"""PyTorch with dynamic int8 quantization (inference only): the standard eager model built as ``torch_``
builds it, then ``torch.ao.quantization.quantize_dynamic`` on its ``nn.LSTM`` / ``nn.GRU`` / ``nn.Linear``
modules (int8 weights, activations quantized at run time: PyTorch's documented scheme for LSTM and MLP
models). ``info`` holds the size of the saved quantized state dict and the worker's memory.
"""
from . import _common
from .torch_ import _set_threads, inference_model, make_model, to_torch_input

REQUIRES = ("torch",)
NAME = "torch_int8"
KINDS = ("mlp", "lstm", "gru")


def setup(threads):
    import torch

    _set_threads(torch, threads)
    return {"threads": {"torch.get_num_threads": torch.get_num_threads()},
            "quantized_engine": torch.backends.quantized.engine}


def supports(spec):
    if spec["kind"] != "infer":
        return "the int8 variant runs the inference workloads"
    if spec["model_spec"]["kind"] not in KINDS:
        return f"PyTorch's dynamic quantization covers the MLP, LSTM and GRU here, not the {spec['model_spec']['kind']}"
    return None


class Runner:
    def __init__(self, spec):
        import os
        import tempfile
        import warnings

        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(0)
        model = spec["model_spec"]
        net = inference_model(make_model(model))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            self.inf = torch.ao.quantization.quantize_dynamic(net, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
        x, _ = _common.make_data(spec)
        self.x = to_torch_input(torch, x, model)
        self.params = None
        self.step()
        tmp = tempfile.TemporaryDirectory()
        path, float_path = os.path.join(tmp.name, "int8.pt"), os.path.join(tmp.name, "float.pt")
        torch.save(self.inf.state_dict(), path)
        torch.save(net.state_dict(), float_path)
        self.info = _common.memory_info({"call": "eager, torch.inference_mode()",
                                         "quantization": "quantize_dynamic (qint8 weights, dynamic activations)"},
                                        path, float_path)
        tmp.cleanup()

    def step(self):
        with self.torch.inference_mode():
            return self.inf(self.x)


def build(spec):
    return Runner(spec)


def count_params(spec):
    return None


def cold_start(payload):
    raise RuntimeError("the int8 variant runs the inference workloads only")


def train_memory(payload):
    raise RuntimeError("the int8 variant is inference only")
