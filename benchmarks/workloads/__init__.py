"""The standard workloads, one module per framework, all built from ``benchmarks.spec``.

Each module (``dlcore_``, ``torch_``, ``keras_``, ``onnxruntime_``; the trailing underscore keeps
them from shadowing the frameworks; ``dlcore_onnx``: dlcore running the PyTorch-exported ONNX file
that ONNX Runtime runs; ``dlcore_int8`` / ``onnxruntime_int8`` / ``torch_int8``: the same models quantized to int8; ``dlcore_bf16``: dlcore
under the mixed_bfloat16 policy)
provides:

    REQUIRES               import names that must be installed (probed without importing)
    DEVICES                (optional, default ("cpu",)) the devices it runs on; "gpu": the
                           runner's --device gpu (dlcore_, torch_)
    setup(threads[, device])  import the framework, set its thread count (and, for "gpu", set
                           up the GPU or raise why not); returns versions/settings
    supports(spec)         None, or why the framework cannot run the workload ("n/a")
    count_params(spec)     trainable parameters of the workload's model (None: not counted)
    build(spec)            a Runner: ``params`` (trainable parameters), ``step()`` (one training
                           step or one predict call), ``info`` (how it runs); on the GPU
                           (spec["device"] == "gpu") it may raise ``_common.Unsupported`` (the
                           workload is "skipped", with the reason)
    cold_start(payload)    the body of a fresh process: import, build, predict one sample
    train_memory(payload)  the body of a fresh process: build, train ``steps`` steps

A module imports its framework only inside these functions, so the runner can probe and
dispatch without loading any framework.
"""
import importlib

MODULES = {"dlcore": "dlcore_", "torch": "torch_", "keras": "keras_", "onnxruntime": "onnxruntime_",
           "dlcore_onnx": "dlcore_onnx", "dlcore_int8": "dlcore_int8", "onnxruntime_int8": "onnxruntime_int8",
           "dlcore_bf16": "dlcore_bf16", "torch_int8": "torch_int8"}


def load(framework):
    """The workload module of ``framework``."""
    return importlib.import_module(f"{__name__}.{MODULES[framework]}")
