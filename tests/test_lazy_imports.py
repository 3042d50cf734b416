"""Lazy submodules: ``import dlcore`` + loading a saved model + predicting imports only what that model
needs, and every public name still resolves (``dl.layers.LSTM``, ``dl.optimizers.Adam``, registry names)."""
import json
import subprocess
import sys

import numpy as np

import dlcore as dl
from dlcore import registry

# A fresh process: save a small MLP, then import, load and predict in another fresh process.
_SAVE = """
import dlcore as dl
m = dl.Sequential([dl.Input(shape=(8,)), dl.layers.Dense(4, activation="relu"), dl.layers.Dense(2)])
m.save(PATH)
"""
_LOAD = """
import json, sys
import numpy as np
import dlcore as dl
m = dl.saving.load_model(PATH)
y = m.predict_on_batch(np.ones((1, 8), "float32"))
print(json.dumps({"shape": list(y.shape), "modules": sorted(sys.modules)}))
"""


# Never imported by import + load a .dlc + predict, whatever the model (issue 16's cold start): SciPy (the
# kernels call NumPy's BLAS), Numba, numpy.random (a loaded model draws nothing), importlib.metadata (its
# email package), the saving formats not used, the recurrent family, the distribution strategies.
_NEVER_TO_PREDICT = ("scipy", "numba", "numpy.random", "importlib.metadata", "email", "dlcore.saving.keras_file",
                     "dlcore.saving.onnx_import", "h5py", "dlcore.distribute", "dlcore.ops.recurrent",
                     "dlcore.kernels.recurrent", "dlcore.callbacks", "dlcore.optimizers", "dlcore.losses",
                     "dlcore.metrics")


def _run(code, path):
    out = subprocess.run([sys.executable, "-c", f"PATH = {str(path)!r}\n" + code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_predicting_a_saved_mlp_imports_no_unused_family(tmp_path):
    path = tmp_path / "mlp.dlc"
    _run(_SAVE, path)
    report = json.loads(_run(_LOAD, path).strip().splitlines()[-1])
    assert report["shape"] == [1, 2]
    loaded = set(report["modules"])
    for unused in ("dlcore.layers.recurrent", "dlcore.layers.attention", "dlcore.layers.preprocessing",
                   "dlcore.layers.conv", "dlcore.datasets", "dlcore.wrappers", "dlcore.ops.attention",
                   "dlcore.kernels.optim",
                   # training-side modules a predict never calls (metrics load with compile)
                   "dlcore.ops.losses",
                   "dlcore.utils.plotting", "dlcore.utils.model_visualization", "dlcore.utils.dataset_utils",
                   "dlcore.utils.sequences", "multiprocessing", "concurrent.futures") + _NEVER_TO_PREDICT:
        assert unused not in loaded, f"{unused} imported to predict a saved Dense model"


# The runner's cold-start CNN (benchmarks/spec.py), smaller; predicted as the runner does.
_SAVE_CNN = """
import dlcore as dl
L = dl.layers
m = dl.Sequential([dl.Input(shape=(12, 12, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2),
                   L.Conv2D(8, 3, activation="relu"), L.Flatten(), L.Dropout(0.5), L.Dense(3, activation="softmax")])
m.save(PATH)
"""
_PREDICT_CNN = """
import json, sys
import numpy as np
import dlcore as dl
from dlcore.utils import random as dl_random
m = dl.saving.load_model(PATH)
y = m.predict(np.ones((1, 12, 12, 1), "float32"), verbose=0)
print(json.dumps({"sum": float(y.sum()), "modules": sorted(sys.modules), "drew": dl_random.generator_created()}))
"""


def test_predicting_a_saved_cnn_imports_no_scipy_numba_or_training_side_module(tmp_path):
    path = tmp_path / "cnn.dlc"
    _run(_SAVE_CNN, path)
    report = json.loads(_run(_PREDICT_CNN, path).strip().splitlines()[-1])
    assert abs(report["sum"] - 1.0) < 1e-5  # a softmax row
    loaded = set(report["modules"])
    assert not [m for m in _NEVER_TO_PREDICT if m in loaded], "imported to predict a saved CNN"
    assert not report["drew"], "loading a .dlc ran an initializer (it drew from dlcore's generator)"


def test_lazy_public_names_resolve():
    assert dl.layers.LSTM.__name__ == "LSTM"
    assert dl.layers.concatenate.__name__ == "concatenate"
    assert dl.optimizers.Adam.__name__ == "Adam"
    assert dl.callbacks.EarlyStopping.__name__ == "EarlyStopping"
    assert "GRU" in dir(dl.layers) and "callbacks" in dir(dl)
    from dlcore.layers import SimpleRNN  # noqa: F401  (from-import of a lazy name)


def test_unknown_attribute_is_an_attribute_error():
    for module, name in ((dl, "no_such_module"), (dl.layers, "NoSuchLayer")):
        try:
            getattr(module, name)
        except AttributeError as exc:
            assert name in str(exc)
        else:
            raise AssertionError(f"{name} resolved")


def test_registry_loads_lazy_layer_families_by_name():
    assert registry.lookup("layer", "gru").__name__ == "GRU"  # case/underscore-insensitive too
    assert "MultiHeadAttention" in registry.registered("layer")
    assert registry.lookup("optimizer", "rmsprop").__name__ == "RMSprop"
    try:
        registry.lookup("layer", "NoSuchLayer")
    except ValueError as exc:
        assert "Known layers" in str(exc) and "LSTM" in str(exc)
    else:
        raise AssertionError("unknown layer resolved")


def test_lazily_loaded_layer_rebuilds_from_config():
    layer = dl.layers.deserialize({"class_name": "SimpleRNN", "config": {"units": 3}})
    y = layer(np.ones((2, 4, 5), "float32"))
    assert tuple(y.shape) == (2, 3)


def test_ops_star_import_and_names_shared_with_their_module():
    namespace = {}
    exec("from dlcore.ops import *", namespace)
    for name in ("lstm", "dot_product_attention", "einsum", "conv", "dense", "sum"):
        assert callable(namespace[name]), name
    import dlcore.ops.conv  # noqa: F401  (importing the submodule must not shadow the op)
    import dlcore.ops.shape  # noqa: F401
    assert callable(dl.ops.conv) and callable(dl.ops.shape) and callable(dl.ops.dropout)
    y = dl.ops.einsum("ij,jk->ik", np.eye(2, dtype="float32"), np.ones((2, 3), "float32"))
    assert np.allclose(np.asarray(y.value), 1.0)


def test_kernel_families_load_on_first_lookup_of_one_of_their_names():
    code = ("import dlcore.kernels as k, sys\n"
            "k.get('dense_forward')\n"
            "print('dlcore.kernels.optim' in sys.modules, 'dlcore.kernels.attention' in sys.modules)\n"
            "k.get('adam_update' if 'adam_update' in k.names() else k.names()[0])\n"
            "print(len(k.names()) == len(set(k.names())), 'dlcore.kernels.optim' in sys.modules)\n"
            "try:\n    k.get('no_such_kernel')\nexcept KeyError as e:\n    print('no_such_kernel' in str(e))\n")
    lines = _run(code, "unused").split()
    assert lines == ["False", "False", "True", "True", "True"]


def test_static_lazy_name_lists_are_complete():
    dl.optimizers.Adam  # noqa: B018  (load the package)
    for kind, names in dl._LAZY_REGISTERED.items():
        canonical = {n.lower().replace("_", "") for n in names}
        missing = [n for n in registry.registered(kind) if n.lower().replace("_", "") not in canonical]
        assert not missing, f"add {missing} to dlcore._LAZY_REGISTERED[{kind!r}]"
