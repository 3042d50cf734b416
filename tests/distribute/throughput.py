"""Training throughput (samples/s) of an MLP and a small CNN, for the README's Distributed table.

    OMP_NUM_THREADS=1 python tests/distribute/throughput.py 1          # 1 process, 1 thread
    OMP_NUM_THREADS=2 python tests/distribute/throughput.py 2          # 1 process, 2 threads
    OMP_NUM_THREADS=1 mpiexec -n 2 python tests/distribute/throughput.py 1
"""
import sys
import time

import numpy as np

import dlcore as dl


def workloads():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 784)).astype("float32")
    mlp = dl.Sequential([dl.Input(shape=(784,)), dl.layers.Dense(256, activation="relu"),
                         dl.layers.Dense(10, activation="softmax")])
    yield "MLP 784-256-10, batch 256", mlp, x, rng.integers(0, 10, 4096), 256
    xi = rng.normal(size=(1024, 28, 28, 1)).astype("float32")
    cnn = dl.Sequential([dl.Input(shape=(28, 28, 1)), dl.layers.Conv2D(16, 3, activation="relu"),
                         dl.layers.MaxPooling2D(2), dl.layers.Conv2D(32, 3, activation="relu"),
                         dl.layers.MaxPooling2D(2), dl.layers.Flatten(), dl.layers.Dense(10, activation="softmax")])
    yield "CNN conv16-conv32, batch 128", cnn, xi, rng.integers(0, 10, 1024), 128


def main(threads):
    dl.config.set_num_threads(threads)
    strategy = dl.distribute.MPIStrategy()
    for name, model, x, y, batch in workloads():
        with strategy.scope():
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)  # compile the kernels
        strategy.barrier()
        t0 = time.perf_counter()
        model.fit(x, y, epochs=2, batch_size=batch, verbose=0)
        strategy.barrier()
        rate = 2 * len(x) / (time.perf_counter() - t0)
        if strategy.is_chief:
            print(f"{name}: {strategy.num_replicas_in_sync} rank(s) x {threads} thread(s): {rate:,.0f} samples/s")


if __name__ == "__main__":
    main(int(sys.argv[1]))
