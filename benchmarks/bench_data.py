"""Data adapters: one fit epoch of a small MLP fed by arrays, by a Python generator of the same
batches, and by a PyDataset; plus the generator alone. The target: generator-fed fit costs no
more than array-fed fit plus the generator's own time. ``python benchmarks/bench_data.py``
prints the ratio."""
import time

import numpy as np

import dlcore as dl
from benchmarks._bench import measure

N, FEATURES, CLASSES, BATCH = 4096, 64, 10, 64
X = np.random.default_rng(0).random((N, FEATURES), dtype=np.float32)
Y = np.random.default_rng(1).integers(0, CLASSES, N)


def _model():
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input((FEATURES,)), dl.layers.Dense(128, activation="relu"),
                           dl.layers.Dense(CLASSES, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X[:BATCH], Y[:BATCH], verbose=0)  # build, compile the kernels
    return model


def _batches():
    for i in range(0, N, BATCH):
        yield X[i:i + BATCH], Y[i:i + BATCH]


class _Batches(dl.utils.PyDataset):
    def __len__(self):
        return N // BATCH

    def __getitem__(self, i):
        return X[i * BATCH:(i + 1) * BATCH], Y[i * BATCH:(i + 1) * BATCH]


def _runs():
    model = _model()
    return {
        "arrays": lambda: model.fit(X, Y, batch_size=BATCH, shuffle=False, verbose=0),
        "generator": lambda: model.fit(_batches(), verbose=0),
        "py_dataset": lambda: model.fit(_Batches(), shuffle=False, verbose=0),
        "generator_alone": lambda: sum(1 for _ in _batches()),
    }


def test_fit_epoch_arrays(benchmark):
    measure(benchmark, _runs()["arrays"], samples=N)


def test_fit_epoch_generator(benchmark):
    measure(benchmark, _runs()["generator"], samples=N)


def test_fit_epoch_py_dataset(benchmark):
    measure(benchmark, _runs()["py_dataset"], samples=N)


def test_generator_alone(benchmark):
    measure(benchmark, _runs()["generator_alone"], samples=N)


def main(repeats=20):
    """Best CPU time of ``repeats`` epochs each, on one thread (steady on a shared machine)."""
    dl.config.set_num_threads(1)
    runs = _runs()
    best = {}
    for name, fn in runs.items():
        fn()
        times = []
        for _ in range(repeats):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        best[name] = min(times)
        print(f"{name:16s} {best[name] * 1e3:8.2f} ms per epoch ({N // BATCH} batches)")
    extra = best["generator"] - best["arrays"]
    print(f"generator / arrays = {best['generator'] / best['arrays']:.3f}; difference {extra * 1e3:.2f} ms, "
          f"the generator alone {best['generator_alone'] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
