"""Train a small convolutional network on scikit-learn's handwritten digits and report holdout accuracy.

    python examples/digits_cnn.py

The 8x8 digits (values 0..16) are scaled to [0, 1], upscaled 3x to 24x24 with bilinear
interpolation and centred on a 32x32 background (4 pixels of margin, as MNIST centres its 20x20
digits in 28x28, so the valid 3x3 convolutions see the strokes at the border too), giving
32x32x1 images for the classic Keras CNN: three Conv2D 3x3 ReLU blocks (32, 64, 128 filters) each followed by 2x2 max
pooling, then Flatten, Dense(128, relu), Dropout(0.5), Dense(10, softmax).

Set DLCORE_TARGET_ACC=0.98 to make the script fail unless the holdout accuracy reaches it.
"""
import os

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import dlcore as dl


def load_images():
    """Digits as (n, 32, 32, 1) float32 images in [0, 1] and their labels."""
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (n, 8, 8), 0..16 -> [0, 1]
    big = np.clip(ndimage.zoom(images, (1, 3, 3), order=1), 0.0, 1.0)  # bilinear, (n, 24, 24)
    big = np.pad(big, ((0, 0), (4, 4), (4, 4)))  # centred on a 32x32 background
    return big[..., None].astype(np.float32), digits.target


def build_model():
    return dl.Sequential([
        dl.Input(shape=(32, 32, 1)),
        dl.layers.Conv2D(32, (3, 3), activation="relu"),
        dl.layers.MaxPooling2D((2, 2)),
        dl.layers.Conv2D(64, (3, 3), activation="relu"),
        dl.layers.MaxPooling2D((2, 2)),
        dl.layers.Conv2D(128, (3, 3), activation="relu"),
        dl.layers.MaxPooling2D((2, 2)),
        dl.layers.Flatten(),
        dl.layers.Dense(128, activation="relu"),
        dl.layers.Dropout(0.5),
        dl.layers.Dense(10, activation="softmax"),
    ])


def main():
    X, y = load_images()
    # the same holdout as examples/digits_mlp.py
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)

    dl.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    model.fit(X_train, y_train, epochs=10, batch_size=32, validation_data=(X_test, y_test), verbose=verbose)
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
