"""Keras 3 with the TensorFlow backend: the standard workloads through ``_keras_api`` (the very
code that builds dlcore's models).

Training uses ``train_on_batch`` and inference ``predict_on_batch``: Keras runs both as compiled
``tf.function`` steps, which is what ``fit``/``predict`` users get. ``compile`` keeps its default
``jit_compile="auto"``, which Keras resolves to no XLA on a machine without a GPU (the resolved
value is recorded). The runner sets ``KERAS_BACKEND=tensorflow`` before the import.
"""
import os

from . import _keras_api

REQUIRES = ("keras", "tensorflow")
NAME = "keras"


def _tf_threads(n):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(int(n))
    except RuntimeError:  # TensorFlow already initialised its thread pools
        pass
    return tf


def _set_threads(keras, n):
    _tf_threads(n)


def setup(threads):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = _tf_threads(threads)
    import keras

    return {"threads": {"tf.intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "tf.inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
            "backend": keras.backend.backend()}


def supports(spec):
    return None


def build(spec):
    import keras

    keras.utils.set_random_seed(0)
    runner = _keras_api.Runner(keras, spec)
    if spec["kind"] == "train":
        runner.info["jit_compile"] = bool(getattr(runner.model, "jit_compile", False))
    return runner


def _early_threads(payload):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _tf_threads(payload["threads"])


def count_params(spec):
    import keras

    return _keras_api.trainable_params(_keras_api.build_model(keras, spec["model_spec"]))


def cold_start(payload):
    # The clock starts before TensorFlow is imported: _keras_api.cold_start imports keras, which
    # imports TensorFlow; threads are set through tf.config first, as a user pinning threads does.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _keras_api.cold_start("keras", payload, _set_threads)


def train_memory(payload):
    _early_threads(payload)
    _keras_api.train_memory("keras", payload, _set_threads)
