"""Data-parallel training of a digits MLP over MPI processes (dl.distribute.MPIStrategy).

    pip install 'dlcore[mpi]'             # mpi4py + the mpich wheel (brings mpiexec)
    OMP_NUM_THREADS=1 mpiexec -n 2 python examples/distributed_mnist_like.py
    python examples/distributed_mnist_like.py          # one process: the same script, one replica

Every rank reads the full data; fit gives each rank its part of every global batch of 64,
averages the gradients over the ranks, and reports global metrics; rank 0 prints and writes the
model (``distributed_digits.dlc`` in DLCORE_OUT_DIR, default the temporary directory).
Set DLCORE_TARGET_ACC=0.95 to make the script fail unless the holdout accuracy reaches it.
"""
import os
import tempfile

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import dlcore as dl


def main():
    strategy = dl.distribute.MPIStrategy()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train).astype("float32"), scaler.transform(X_test).astype("float32")

    dl.utils.set_random_seed(0)
    with strategy.scope():
        model = dl.Sequential([
            dl.Input(shape=(64,)),
            dl.layers.Dense(128, activation="relu"),
            dl.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    model.fit(X_train, y_train, epochs=15, batch_size=64, verbose=verbose)  # global batch size
    loss, acc = model.evaluate(X_test, y_test, verbose=0)
    model.save(os.path.join(os.environ.get("DLCORE_OUT_DIR", tempfile.gettempdir()), "distributed_digits.dlc"))
    if strategy.is_chief:
        print(f"{strategy.num_replicas_in_sync} replica(s): holdout loss {loss:.4f}  holdout accuracy {acc:.4f}")

    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and acc < float(target):
        raise SystemExit(f"holdout accuracy {acc:.4f} is below the target {float(target):.4f}")
    return acc


if __name__ == "__main__":
    main()
