"""One-step-ahead time-series forecasting with LSTM(64) -> Dense(1), trained with MSE.

    python examples/time_series_forecasting.py

The series is synthetic (no download): a daily-and-weekly seasonal signal with a slow trend and
noise, the shape of hourly load or traffic data. Windows of the last 48 values predict the next
one. The LSTM is compared with the two baselines every forecaster should beat: "same as the
last value" and "same as one day earlier". Reported: holdout MSE and MAE of each, and the
holdout accuracy, defined as the share of forecasts within 0.1 (in units of the series'
standard deviation) of the truth.

Set DLCORE_TARGET_ACC=0.75 to make the script fail unless the holdout accuracy reaches it.
"""
import os
import time

import numpy as np

import dlcore as dl

WINDOW = 48
DAY = 24
TOLERANCE = 0.1


def make_series(n, rng):
    t = np.arange(n, dtype=np.float64)
    daily = np.sin(2 * np.pi * t / DAY) + 0.5 * np.sin(4 * np.pi * t / DAY + 0.3)
    weekly = 0.6 * np.sin(2 * np.pi * t / (7 * DAY))
    trend = 0.002 * t
    return daily + weekly + trend + rng.normal(0, 0.05, n)


def windows(series):
    x = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)
    y = series[WINDOW:]
    return x[..., None].astype(np.float32), y[:, None].astype(np.float32)


def main():
    rng = np.random.default_rng(0)
    series = make_series(4000, rng)
    split = 3000
    mean, std = series[:split].mean(), series[:split].std()
    scaled = (series - mean) / std
    x_train, y_train = windows(scaled[:split])
    x_test, y_test = windows(scaled[split - WINDOW:])

    dl.utils.set_random_seed(0)
    model = dl.Sequential([
        dl.Input(shape=(WINDOW, 1)),
        dl.layers.LSTM(64),
        dl.layers.Dense(1),
    ])
    model.compile(optimizer=dl.optimizers.Adam(learning_rate=3e-3, clipnorm=1.0), loss="mse", metrics=["mae"])
    model.summary()
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=40, batch_size=64, validation_split=0.1, verbose=verbose,
              callbacks=[dl.callbacks.EarlyStopping(patience=6, restore_best_weights=True)])
    print(f"training time {time.perf_counter() - start:.1f} s")

    pred = model.predict(x_test, verbose=0)
    baselines = {"LSTM": pred, "last value": x_test[:, -1, :], "one day earlier": x_test[:, -DAY, :]}
    for name, p in baselines.items():
        err = p - y_test
        print(f"{name:>16}: holdout MSE {float(np.mean(err ** 2)):.4f}  MAE {float(np.mean(np.abs(err))):.4f}")
    acc = float(np.mean(np.abs(pred - y_test) < TOLERANCE))
    print(f"holdout accuracy {acc:.4f}  (share of forecasts within {TOLERANCE} standard deviations)")

    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and acc < float(target):
        raise SystemExit(f"holdout accuracy {acc:.4f} is below the target {float(target):.4f}")
    return acc


if __name__ == "__main__":
    main()
