"""Run under ``mpiexec -n 2`` (or alone, as the 1-process reference) by tests/distribute/test_mpi.py.

    python mpi_worker.py MODE OUT_DIR

Modes: ``train`` (an MLP and a small CNN, checkpoint + CSV log, sharded validation and evaluate),
``syncbn`` (a CNN with BatchNormalization(synchronized=True)), ``resume`` (from train's
checkpoint), ``mismatch`` (rank 1 builds another model), ``die`` (rank 1 raises before fit), ``hang`` (rank 1 sleeps),
``custom`` (a GradientTape loop with reduce / sharding / broadcast). Each rank writes what it
saw to ``OUT_DIR/<mode>_rank<r>.npz`` / ``.txt``.
"""
import json
import os
import sys

import numpy as np

import dlcore as dl


def data(n=96, shape=(12,), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = (x.reshape(n, -1).sum(axis=1) > 0).astype("int64") + (x.reshape(n, -1)[:, 0] > 1)
    return x, y % classes


def mlp(width=16):
    dl.utils.set_random_seed(1)
    return dl.Sequential([dl.Input(shape=(12,)), dl.layers.Dense(width, activation="relu"),
                          dl.layers.Dense(3, activation="softmax")])


def cnn(batch_norm=False):
    """Without BatchNormalization the 2-rank step equals the 1-process step on the global batch;
    with it, each replica normalizes by its own batch moments (Keras's default), unless
    ``batch_norm="sync"`` (synchronized=True: the global batch's moments)."""
    dl.utils.set_random_seed(2)
    norm = [dl.layers.BatchNormalization(synchronized=batch_norm == "sync", momentum=0.5)] if batch_norm else []
    return dl.Sequential([dl.Input(shape=(8, 8, 1)), dl.layers.Conv2D(4, 3, activation="relu"), *norm,
                          dl.layers.MaxPooling2D(2), dl.layers.Flatten(), dl.layers.Dense(3, activation="softmax")])


def weights_of(model):
    return {f"w{i}": np.array(w) for i, w in enumerate(model.get_weights())}


def main(mode, out):
    strategy = dl.distribute.MPIStrategy(timeout=float(os.environ.get("DLCORE_MPI_TIMEOUT", 60)),
                                         reduction=os.environ.get("DLCORE_TEST_REDUCTION", "allreduce"))
    r = strategy.rank
    result = {"replicas": strategy.num_replicas_in_sync}
    if mode == "train":
        x, y = data()
        with strategy.scope():
            model = mlp()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ckpt = os.path.join(out, "mlp.dlc")
        seen = []  # the rows this rank evaluates: its share of every batch, not all of them
        test_step = model.test_step
        model.test_step = lambda batch: (seen.append(len(batch[0])), test_step(batch))[1]
        hist = model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, validation_data=data(n=33, seed=4),
                         validation_batch_size=16,
                         callbacks=[dl.callbacks.ModelCheckpoint(ckpt, monitor="loss"),
                                    dl.callbacks.CSVLogger(os.path.join(out, "log.csv"))])
        result["mlp_history"] = hist.history
        result["evaluate"] = model.evaluate(*data(n=33, seed=5), batch_size=16, verbose=0, return_dict=True)
        result["evaluated_rows"] = list(seen)
        try:  # one sample cannot be split over two ranks (one rank, one process: it evaluates)
            result["evaluate_one"] = model.evaluate(x[:1], y[:1], verbose=0, return_dict=True)
        except ValueError as e:
            result["evaluate_one"] = str(e)
        arrays = {f"mlp_{k}": v for k, v in weights_of(model).items()}
        xi, yi = data(n=40, shape=(8, 8, 1), seed=3)
        with strategy.scope():
            conv = cnn()
            conv.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        result["cnn_history"] = conv.fit(xi, yi, epochs=2, batch_size=20, shuffle=False, verbose=0).history
        arrays.update({f"cnn_{k}": v for k, v in weights_of(conv).items()})
        with strategy.scope():
            conv = cnn(batch_norm=True)
            conv.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        conv.fit(xi, yi, epochs=2, batch_size=10, shuffle=True, verbose=0)  # shared shuffling, BN statistics
        arrays.update({f"bn_{k}": v for k, v in weights_of(conv).items()})
    elif mode == "syncbn":  # synchronized BatchNormalization: forward, gradients, then fit
        xi, yi = data(n=40, shape=(8, 8, 1), seed=3)
        with strategy.scope():
            model = cnn(batch_norm="sync")
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model(xi[:2])
        (bx, by), share = strategy.shard((xi[:20], yi[:20]))
        loss_fn = dl.losses.SparseCategoricalCrossentropy()
        with strategy.scope(), dl.GradientTape() as tape:
            pred = model(bx, training=True)
            loss = loss_fn(by, pred)
        grads = strategy.all_reduce_gradients(tape.gradient(loss, model.trainable_weights), weight=share)
        arrays = {"out": np.array(pred.value), **{f"grad{i}": np.array(g) for i, g in enumerate(grads)},
                  **{f"first_{k}": v for k, v in weights_of(model).items()}}
        result["history"] = model.fit(xi, yi, epochs=2, batch_size=10, shuffle=False, verbose=0,
                                      validation_data=data(n=12, shape=(8, 8, 1), seed=6)).history
        arrays.update({f"fit_{k}": v for k, v in weights_of(model).items()})
        # masked statistics (padding tokens left out), synchronized too
        tokens = np.random.default_rng(7).integers(0, 6, size=(20, 5))
        with strategy.scope():
            dl.utils.set_random_seed(3)
            masked = dl.Sequential([dl.Input(shape=(5,), dtype="int32"), dl.layers.Embedding(6, 4, mask_zero=True),
                                    dl.layers.BatchNormalization(synchronized=True, momentum=0.5),
                                    dl.layers.GlobalAveragePooling1D(), dl.layers.Dense(3, activation="softmax")])
            masked.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        masked.fit(tokens, yi[:20], epochs=2, batch_size=10, shuffle=False, verbose=0)
        arrays.update({f"mask_{k}": v for k, v in weights_of(masked).items()})
    elif mode == "resume":
        x, y = data()
        with strategy.scope():
            model = dl.models.load_model(os.path.join(out, "mlp.dlc"))
        model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
        arrays = {f"mlp_{k}": v for k, v in weights_of(model).items()}
    elif mode == "mismatch":
        x, y = data()
        with strategy.scope():
            model = mlp(width=16 if r == 0 else 8)
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        try:
            model.fit(x, y, epochs=1, batch_size=32, verbose=0)
            result["error"] = None
        except ValueError as e:
            result["error"] = str(e)
        arrays = {}
    elif mode == "die":
        x, y = data()
        with strategy.scope():
            model = mlp()
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        if r == 1:
            raise RuntimeError("rank 1 fails on purpose")
        model.fit(x, y, epochs=50, batch_size=32, verbose=0)
        arrays = {}
    elif mode == "hang":  # rank 1 never joins: the watchdog aborts rank 0 after DLCORE_MPI_TIMEOUT s
        x, y = data()
        with strategy.scope():
            model = mlp()
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        if r == 1:
            import time
            time.sleep(600)
        model.fit(x, y, epochs=50, batch_size=32, verbose=0)
        arrays = {}
    elif mode == "custom":
        x, y = data()
        model = mlp()
        model(x[:1])
        with strategy.scope():
            opt = dl.optimizers.SGD(0.1)
        loss_fn = dl.losses.SparseCategoricalCrossentropy()
        strategy.broadcast_variables(model.weights)
        batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]
        for bx, by in strategy.experimental_distribute_dataset(batches):
            with dl.GradientTape() as tape:
                loss = loss_fn(by, model(bx, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            opt.apply_gradients(zip(grads, model.trainable_weights))
        result["sum"] = float(strategy.reduce("SUM", np.float32(r + 1)))
        result["mean_axis"] = float(strategy.reduce("MEAN", np.full(3 + r, r, "float32"), axis=0))
        arrays = {f"mlp_{k}": v for k, v in weights_of(model).items()}
    else:
        raise ValueError(f"unknown mode {mode!r}")
    np.savez(os.path.join(out, f"{mode}_rank{r}.npz"), **arrays)
    with open(os.path.join(out, f"{mode}_rank{r}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
