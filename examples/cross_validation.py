"""5-fold stratified cross-validation of a dlcore MLP on scikit-learn's digits, with scikit-learn
doing the bookkeeping: SKLearnClassifier in a Pipeline(StandardScaler, classifier), cross_validate
for accuracy / macro precision / macro recall, the out-of-fold predictions for a confusion matrix,
and the training curves of one fit saved with dl.utils.plot_history.

    python examples/cross_validation.py [--out DIR]

The plot goes to DIR (default: a new temporary directory). Set DLCORE_TARGET_ACC=0.95 to make the
script fail unless the mean cross-validated accuracy reaches it.
"""
import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import dlcore as dl
from dlcore.wrappers import SKLearnClassifier


def make_mlp(X, y, hidden=128, dropout=0.2, learning_rate=1e-3):
    """Called by the wrapper for every fit with the training fold: X (n, 64) and y one-hot (n, 10)."""
    model = dl.Sequential([
        dl.Input(shape=(X.shape[1],)),
        dl.layers.Dense(hidden, activation="relu"),
        dl.layers.Dropout(dropout),
        dl.layers.Dense(y.shape[1], activation="softmax"),
    ])
    model.compile(optimizer=dl.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the training-curve plot (default: a temporary directory)")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    out_dir = args.out or tempfile.mkdtemp(prefix="dlcore_cross_validation_")
    os.makedirs(out_dir, exist_ok=True)

    start = time.perf_counter()
    X, y = load_digits(return_X_y=True)
    dl.utils.set_random_seed(0)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("clf", SKLearnClassifier(make_mlp, model_kwargs={"hidden": 128},
                                  fit_kwargs={"epochs": args.epochs, "batch_size": 32, "verbose": 0})),
    ])
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    # One fit per fold; the fitted folds and their test indices give the out-of-fold predictions
    # (what cross_val_predict computes) without fitting everything a second time.
    results = cross_validate(pipe, X, y, cv=cv, scoring=["accuracy", "precision_macro", "recall_macro"],
                             return_estimator=True, return_indices=True)
    print(f"5-fold stratified cross-validation of a dlcore MLP on digits ({len(X)} images, "
          f"{args.epochs} epochs per fold):")
    for name in ("accuracy", "precision_macro", "recall_macro"):
        scores = results[f"test_{name}"]
        print(f"  {name:<16s} {scores.mean():.4f} ± {scores.std():.4f}   folds: "
              + " ".join(f"{s:.3f}" for s in scores))
    print(f"  fit time per fold {results['fit_time'].mean():.2f} s")

    oof = np.empty_like(y)
    for estimator, test_idx in zip(results["estimator"], results["indices"]["test"]):
        oof[test_idx] = estimator.predict(X[test_idx])
    print("confusion matrix of the out-of-fold predictions (rows: true digit, columns: predicted):")
    matrix = confusion_matrix(y, oof)
    print("      " + " ".join(f"{c:>4d}" for c in range(10)))
    for digit, row in enumerate(matrix):
        print(f"  {digit:>2d}  " + " ".join(f"{v:>4d}" for v in row))

    # One more fit, holding out 20% of the (shuffled) data, to plot training and validation curves.
    order = np.random.default_rng(0).permutation(len(X))  # validation_split takes the last 20%
    pipe.fit(X[order], y[order], clf__validation_split=0.2)
    history = pipe.named_steps["clf"].history_
    plot_path = os.path.join(out_dir, "cross_validation_history.png")
    try:
        dl.utils.plot_history(history, path=plot_path)
        print(f"training curves of one fit saved to {plot_path}")
    except ImportError as exc:  # matplotlib is optional (the examples extra)
        print(f"no plot: {exc}")

    accuracy = float(results["test_accuracy"].mean())
    assert np.isclose(accuracy_score(y, oof), accuracy, atol=0.01)
    print(f"holdout accuracy {accuracy:.4f}  (mean over the 5 held-out folds; {time.perf_counter() - start:.1f} s)")
    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and accuracy < float(target):
        raise SystemExit(f"cross-validated accuracy {accuracy:.4f} is below the target {float(target):.4f}")
    return accuracy


if __name__ == "__main__":
    main()
