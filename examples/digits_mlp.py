"""Train a multilayer perceptron on scikit-learn's handwritten digits and report holdout accuracy.

    python examples/digits_mlp.py

Set DLCORE_TARGET_ACC=0.95 to make the script fail unless the holdout accuracy reaches it.
"""
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import dlcore as dl


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    scaler = StandardScaler()
    X_train = scaler.fit_transform(X_train)
    X_test = scaler.transform(X_test)

    dl.utils.set_random_seed(0)
    model = dl.Sequential([
        dl.Input(shape=(64,)),
        dl.layers.Dense(128, activation="relu", kernel_regularizer=dl.regularizers.L2(1e-4)),
        dl.layers.Dropout(0.2),
        dl.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    model.fit(X_train, y_train, epochs=20, batch_size=32, validation_data=(X_test, y_test), verbose=verbose)
    loss, acc = model.evaluate(X_test, y_test, verbose=0)
    probs = model.predict(X_test, verbose=0)
    agree = float(np.mean(np.argmax(probs, axis=1) == y_test))
    print(f"holdout loss {loss:.4f}  holdout accuracy {acc:.4f}  (argmax of predict: {agree:.4f})")

    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and acc < float(target):
        raise SystemExit(f"holdout accuracy {acc:.4f} is below the target {float(target):.4f}")
    return acc


if __name__ == "__main__":
    main()
