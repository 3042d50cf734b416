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


# keras.ops.dot_product_attention on TensorFlow materializes the (heads, seq, seq) scores (and
# their gradient): a few GB at 8192, more than this comparison may take from a shared machine.
KERAS_MAX_ATTENTION_SEQ = 4096


def supports(spec):
    if spec["kind"] == "attention" and spec.get("seq", 0) > KERAS_MAX_ATTENTION_SEQ:
        gb = 4 * spec["model_spec"]["heads"] * spec["seq"] ** 2 / 2 ** 30
        return (f"sequence {spec['seq']} > {KERAS_MAX_ATTENTION_SEQ}: Keras's dot_product_attention "
                f"materializes {gb:.1f} GB of scores per copy")
    return None


def _watch(q, k, v, dy, call):
    """Forward+backward step: tf.GradientTape in a tf.function (as Keras's compiled train step)."""
    import tensorflow as tf

    tensors = [tf.constant(x) for x in (q, k, v)]
    dy = tf.constant(dy)

    @tf.function
    def step(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = call(q, k, v)
        return tape.gradient(out, [q, k, v], output_gradients=dy)
    return lambda: step(*tensors)


def _forward_compiled(lib, spec):
    import tensorflow as tf

    q, k, v, _ = (tf.constant(x) for x in _common_qkv(spec))
    fn = tf.function(lambda q, k, v: lib.ops.dot_product_attention(q, k, v, is_causal=True))
    return lambda: fn(q, k, v)


def _common_qkv(spec):
    from . import _common

    return _common.make_qkv(spec)


def _attention_step(lib, spec):
    if spec["pass"] == "forward":
        return _forward_compiled(lib, spec)
    return _keras_api.attention_step(lib, spec, _watch)


def _setup_lib(threads):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _tf_threads(threads)
    import keras

    return keras


def attention_memory(payload):
    from . import _common

    _common.attention_memory(payload, _setup_lib, _attention_step)


def build(spec):
    import keras

    keras.utils.set_random_seed(0)
    if spec["kind"] == "attention":
        runner = _keras_api.AttentionRunner(keras, spec, _watch)
        runner.step = _attention_step(keras, spec)
        runner.info["call"] += " in a tf.function"
        return runner
    runner = _keras_api.Runner(keras, spec)
    if spec["kind"] == "train":
        runner.info["jit_compile"] = bool(getattr(runner.model, "jit_compile", False))
    return runner


def _early_threads(payload):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _tf_threads(payload["threads"])


def count_params(spec):
    if spec["kind"] == "attention":
        return 0
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


def save_model(spec, path):
    import keras

    return _keras_api.save_model(keras, spec, path + ".keras")


def infer_memory(payload):
    _early_threads(payload)
    _keras_api.infer_memory("keras", payload, _set_threads)
