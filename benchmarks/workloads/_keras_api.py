"""The standard models written once against the Keras 3 API, built by dlcore and by Keras.

``lib`` is the ``dlcore`` module or the ``keras`` module: the same code builds both, so the two
definitions cannot drift apart.
"""
from .. import spec as _spec
from . import _common

# The layers each model needs: a framework without one of them shows "n/a".
LAYERS = {
    "cnn": ("Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout"),
    "mlp": ("Dense",),
    "lstm": ("LSTM", "Dense"),
    "gru": ("GRU", "Dense"),
    "transformer": ("Embedding", "MultiHeadAttention", "LayerNormalization", "Dropout", "Add",
                    "GlobalAveragePooling1D", "Dense"),
}


def missing_layers(lib, model):
    return [name for name in LAYERS[model["kind"]] if not hasattr(lib.layers, name)]


def _token_and_position_embedding(lib, model):
    """keras.io's TokenAndPositionEmbedding: token embedding + learned position embedding."""
    L = lib.layers

    class TokenAndPositionEmbedding(L.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            positions = self.pos_emb(lib.ops.arange(start=0, stop=lib.ops.shape(x)[-1], step=1))
            return self.token_emb(x) + positions

    return TokenAndPositionEmbedding(model["maxlen"], model["vocab"], model["embed"])


def build_transformer(lib, model):
    """The transformer classifier, functional API, post-norm blocks as keras.io's TransformerBlock."""
    L = lib.layers
    inputs = lib.Input(shape=(model["maxlen"],), dtype="int32")
    h = _token_and_position_embedding(lib, model)(inputs)
    eps, rate = model["epsilon"], model["dropout"]
    for _ in range(model["blocks"]):
        a = L.MultiHeadAttention(num_heads=model["heads"], key_dim=model["key_dim"])(h, h)
        h = L.LayerNormalization(epsilon=eps)(L.Add()([h, L.Dropout(rate)(a)]))
        f = L.Dense(model["embed"])(L.Dense(model["ffn"], activation="relu")(h))
        h = L.LayerNormalization(epsilon=eps)(L.Add()([h, L.Dropout(rate)(f)]))
    h = L.GlobalAveragePooling1D()(h)
    outputs = L.Dense(model["classes"], activation="softmax")(h)
    return lib.Model(inputs, outputs)


def build_model(lib, model):
    L = lib.layers
    kind = model["kind"]
    if kind == "transformer":
        return build_transformer(lib, model)
    layers = [lib.Input(shape=_spec.input_shape(model))]
    if kind == "cnn":
        for f in model["filters"]:
            layers += [L.Conv2D(f, model["kernel"], activation="relu"), L.MaxPooling2D(model["pool"])]
        layers += [L.Flatten(), L.Dense(model["dense"], activation="relu"), L.Dropout(model["dropout"])]
    elif kind == "mlp":
        layers += [L.Dense(h, activation="relu") for h in model["hidden"]]
    elif kind == "lstm":
        layers.append(L.LSTM(model["units"]))
    elif kind == "gru":
        layers.append(L.GRU(model["units"]))  # Keras default reset_after=True
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    layers.append(L.Dense(model["classes"], activation="softmax"))
    return lib.Sequential(layers)


def make_optimizer(lib, opt):
    if opt["name"] == "adam":
        return lib.optimizers.Adam(learning_rate=opt["learning_rate"], beta_1=opt["beta_1"],
                                   beta_2=opt["beta_2"], epsilon=opt["epsilon"])
    if opt["name"] == "sgd":
        return lib.optimizers.SGD(learning_rate=opt["learning_rate"], momentum=opt["momentum"])
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def compile_model(lib, model, spec):
    model.compile(optimizer=make_optimizer(lib, spec["optimizer_spec"]), loss=_spec.LOSS)


class Runner:
    """``step()``: ``train_on_batch`` (training) or ``predict_on_batch`` (inference)."""

    def __init__(self, lib, spec, info=None):
        self.model = build_model(lib, spec["model_spec"])
        self.x, self.y = _common.make_data(spec)
        self.info = dict(info or {})
        if spec["kind"] == "train":
            compile_model(lib, self.model, spec)
            self.info["call"] = "model.train_on_batch(x, y)"
            self.step = self._train
        else:
            self.info["call"] = "model.predict_on_batch(x)"
            self.step = self._predict
        self.params = trainable_params(self.model)

    def _train(self):
        return self.model.train_on_batch(self.x, self.y)

    def _predict(self):
        return self.model.predict_on_batch(self.x)


def trainable_params(model):
    return int(sum(_size(w) for w in model.trainable_weights))


def _size(w):
    shape = tuple(w.shape)
    n = 1
    for d in shape:
        n *= int(d)
    return n


def cold_start(lib_name, payload, set_threads):
    """Body of a cold-start child: import ``lib_name``, build the model, predict one sample."""
    clock = _common.Clock()
    import importlib

    lib = importlib.import_module(lib_name)
    set_threads(lib, payload["threads"])
    clock.mark("import_s")
    spec = payload["spec"]
    if spec.get("saved_path"):
        model = lib.saving.load_model(spec["saved_path"])
        clock.mark("load_s")
    else:
        model = build_model(lib, spec["model_spec"])
        clock.mark("build_s")
    x, _ = _common.make_data(spec)
    out = model.predict(x, verbose=0)
    clock.mark("predict_s")
    assert out.shape == (spec["batch"], spec["model_spec"]["classes"])
    _common.report({"phases": clock.phases, "inside_s": clock.total(),
                    "loaded": _common.loaded_heavy_modules()})


def save_model(lib, spec, path):
    """The workload's model (seeded) saved to ``path`` in the framework's own format."""
    lib.utils.set_random_seed(0)
    model = build_model(lib, spec["model_spec"])
    model.save(path)
    return path


def infer_memory(lib_name, payload, set_threads):
    """Body of an inference-memory child (``_common.infer_memory``) for a Keras-API framework."""
    import importlib

    lib = importlib.import_module(lib_name)
    set_threads(lib, payload["threads"])

    def fresh_model(spec):
        model = build_model(lib, spec["model_spec"])
        return model.predict_on_batch

    extra = None
    if lib_name == "dlcore":
        def extra(predict):
            from dlcore.models.inference import planned_memory

            x, _ = _common.make_data(payload["spec"])
            for _ in range(3):  # a shape's arena serves from its fourth call (plain, traced, retraced)
                predict(x)
            sizes = list(planned_memory(predict.__self__).values())
            return {"arena_mb": sizes[0][0] / 2 ** 20, "unplanned_mb": sizes[0][1] / 2 ** 20,
                    "live_peak_mb": sizes[0][2] / 2 ** 20} if sizes else {}
    _common.infer_memory(payload, fresh_model, extra)


def train_memory(lib_name, payload, set_threads):
    """Body of a memory child: build, compile and train ``steps`` steps with train_on_batch."""
    clock = _common.Clock()
    import importlib

    lib = importlib.import_module(lib_name)
    set_threads(lib, payload["threads"])
    spec = payload["spec"]
    model = build_model(lib, spec["model_spec"])
    compile_model(lib, model, spec)
    x, y = _common.make_data(spec)
    for _ in range(spec["steps"]):
        model.train_on_batch(x, y)
    clock.mark("train_s")
    _common.report({"phases": clock.phases, "inside_s": clock.total()})


def attention_step(lib, spec, watch):
    """One causal self-attention call of the attention workload through ``lib.ops
    .dot_product_attention`` (Keras 3's op; (batch, seq, heads, head_dim)); forward+backward
    takes the gradients of q, k and v with ``watch(q, k, v, dy, call)`` (the framework's tape)."""
    q, k, v, dy = _common.make_qkv(spec)
    if spec["pass"] == "forward":
        return lambda: lib.ops.dot_product_attention(q, k, v, is_causal=True)
    return watch(q, k, v, dy, lambda q, k, v: lib.ops.dot_product_attention(q, k, v, is_causal=True))


class AttentionRunner:
    def __init__(self, lib, spec, watch):
        self.step = attention_step(lib, spec, watch)
        self.params = 0
        self.info = {"call": f"ops.dot_product_attention(is_causal=True), {spec['pass']}"}
