"""Keras 3 in its own process (the test process stays free of TensorFlow and Keras).

``python keras_worker.py load <model.keras> <x.npy> <out.npy>``: Keras loads a file dlcore wrote and
writes its predictions. ``python keras_worker.py make <kind> <dir>``: Keras builds, trains one
step and saves model ``<kind>`` as ``<dir>/<kind>.keras``, ``<dir>/<kind>.weights.h5`` and
``<dir>/<kind>.h5`` (legacy), with the input ``x.npy``, the predictions ``y.npy`` and, after one
more training step on ``x``/``t``, ``y_step.npy``. Several commands, separated by ``--``, share
one process."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402


def build(kind):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if kind == "mlp":
        model = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu", name="d1"),
                                  L.BatchNormalization(name="bn"), L.Dropout(0.1), L.Dense(3, name="d2")])
        x, t = rng.random((8, 6), dtype=np.float32), rng.random((8, 3), dtype=np.float32)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    elif kind == "cnn":
        model = keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                                  L.BatchNormalization(), L.MaxPooling2D(2), L.Flatten(), L.Dense(3, activation="softmax")])
        x, t = rng.random((4, 8, 8, 2), dtype=np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
    elif kind == "rnn":
        inp = keras.Input((5,), dtype="int32", name="tokens")
        h = L.Embedding(20, 4, mask_zero=True, name="emb")(inp)
        a = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(h)
        b = L.GRU(3, name="gru")(a)
        c = L.Dense(3, name="side")(L.GlobalAveragePooling1D()(a))
        out = L.Dense(2, name="head")(L.Concatenate()([b, L.Add()([b, c])]))
        model = keras.Model(inp, out)
        x = rng.integers(0, 20, (4, 5)).astype(np.int32)
        x[:, -2:] = 0
        t = rng.random((4, 2), dtype=np.float32)
        model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="mse")
    else:
        raise SystemExit(f"unknown kind {kind}")
    return model, x, t


def run(argv):
    if argv[0] == "load":
        model = keras.models.load_model(argv[1])
        x = np.load(argv[2])
        np.save(argv[3], np.asarray(model.predict(x, verbose=0)))
        return
    kind, out = argv[1], argv[2]
    model, x, t = build(kind)
    model.fit(x, t, epochs=1, batch_size=len(x), verbose=0)
    model.save(os.path.join(out, f"{kind}.keras"))
    model.save_weights(os.path.join(out, f"{kind}.weights.h5"))
    model.save(os.path.join(out, f"{kind}.h5"))
    np.save(os.path.join(out, "x.npy"), x)
    np.save(os.path.join(out, "t.npy"), t)
    np.save(os.path.join(out, "y.npy"), np.asarray(model.predict(x, verbose=0)))
    model.fit(x, t, epochs=1, batch_size=len(x), verbose=0, shuffle=False)
    np.save(os.path.join(out, "y_step.npy"), np.asarray(model.predict(x, verbose=0)))


def main():
    """Commands separated by ``--`` run in one process (TensorFlow is imported once)."""
    command = []
    for arg in sys.argv[1:] + ["--"]:
        if arg == "--":
            if command:
                run(command)
            command = []
        else:
            command.append(arg)


if __name__ == "__main__":
    main()
