"""A DCGAN (the cheatsheet's generative adversarial network) that learns to draw 8x8 digits.

    python examples/gan_digits.py [output_dir]

The keras.io "DCGAN overriding train_step" pattern: a `dl.Model` subclass holds a generator and a
discriminator, `compile(d_optimizer, g_optimizer, loss_fn)` takes one optimizer for each, and
`train_step` (called by `fit(x)` on the real images alone) first trains the discriminator to tell
real images (label 0) from generated ones (label 1, with a little label noise), then trains the
generator to make the discriminator say "real". The generator maps 32 normal latent values through
Dense -> BatchNormalization -> LeakyReLU -> Reshape (4, 4, 64) -> Conv2DTranspose (stride 2) ->
BatchNormalization -> LeakyReLU -> Conv2D (tanh) to an 8x8x1 image; the discriminator is two
strided Conv2D + LeakyReLU blocks, Flatten, Dropout and a sigmoid Dense. The data are
scikit-learn's 1797 digits, 0..16 scaled to [-1, 1].

The check: a digits classifier (an MLP trained separately on 80% of the real digits, its holdout
accuracy printed) labels 1000 generated samples. Its mean max-probability on them is the
"generated confidence" (real holdout digits score about 0.97; the same classifier on uniform
noise images is printed for comparison), and the class histogram of the samples must not be
collapsed: at least 6 of the 10 classes must each hold 3% or more of the samples, else the
script reports mode collapse. A PNG grid of 64 samples (matplotlib, Agg) is saved to the output
directory (the argument, else $DLCORE_EXAMPLES_OUT, else a new temporary directory). Seeded.

Set DLCORE_TARGET_CONFIDENCE=0.8 to make the script fail unless the generated confidence reaches
it and the samples are not mode-collapsed.
"""
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import dlcore as dl  # noqa: E402
from dlcore import layers, ops  # noqa: E402

LATENT_DIM = 32
MIN_CLASSES, MIN_SHARE = 6, 0.03  # the mode-collapse check


class GAN(dl.Model):
    """Adversarial training of `generator` against `discriminator` (keras.io's train_step pattern)."""

    def __init__(self, discriminator, generator, latent_dim, seed=1337):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = dl.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = dl.metrics.Mean(name="d_loss")
        self.g_loss_metric = dl.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        noise = dl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        fake_images = self.generator(noise, training=True)
        combined = ops.concatenate([fake_images, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels = labels + 0.05 * dl.random.uniform(ops.shape(labels), seed=self.seed_generator)
        with dl.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined, training=True))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        noise = dl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))  # "these are real"
        with dl.GradientTape() as tape:
            predictions = self.discriminator(self.generator(noise, training=True), training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def build_generator():
    return dl.Sequential([
        dl.Input((LATENT_DIM,)),
        layers.Dense(4 * 4 * 64),
        layers.BatchNormalization(),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((4, 4, 64)),
        layers.Conv2DTranspose(32, 4, strides=2, padding="same"),  # (8, 8, 32)
        layers.BatchNormalization(),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, 3, padding="same", activation="tanh"),  # (8, 8, 1) in [-1, 1]
    ], name="generator")


def build_discriminator():
    return dl.Sequential([
        dl.Input((8, 8, 1)),
        layers.Conv2D(32, 3, strides=2, padding="same"),  # (4, 4, 32)
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(64, 3, strides=2, padding="same"),  # (2, 2, 64)
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ], name="discriminator")


def train_classifier(images, labels, verbose):
    """An MLP on the flattened real digits in [-1, 1]; returns it and its holdout accuracy."""
    x = images.reshape(len(images), -1)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.2, random_state=42)
    clf = dl.Sequential([
        dl.Input((64,)),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="digits_classifier")
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    clf.fit(x_train, y_train, epochs=40, batch_size=32, verbose=verbose)
    _, acc = clf.evaluate(x_test, y_test, verbose=0)
    real_confidence = float(np.mean(np.max(clf.predict(x_test, verbose=0), axis=1)))
    return clf, acc, real_confidence


def save_grid(samples, path):
    """An 8x8 grid of (8, 8) images in [-1, 1] as a PNG."""
    fig, axes = plt.subplots(8, 8, figsize=(6, 6))
    for ax, image in zip(axes.ravel(), samples):
        ax.imshow(image[..., 0], cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def class_histogram(probs):
    """The share of samples the classifier puts in each of the 10 classes, shape (10,)."""
    return np.bincount(np.argmax(probs, axis=1), minlength=10) / len(probs)


def mode_collapse(shares, min_classes=MIN_CLASSES, min_share=MIN_SHARE):
    """(collapsed, covered): covered counts the classes holding at least `min_share` of the
    samples; the samples are collapsed when fewer than `min_classes` are covered."""
    covered = int(np.sum(np.asarray(shares) >= min_share))
    return covered < min_classes, covered


def main(output_dir=None, epochs=60, n_samples=1000, seed=0):
    output_dir = output_dir or os.environ.get("DLCORE_EXAMPLES_OUT") or tempfile.mkdtemp(prefix="gan_digits_")
    os.makedirs(output_dir, exist_ok=True)
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 8.0 - 1.0)[..., None]  # (1797, 8, 8, 1) in [-1, 1]

    dl.utils.set_random_seed(seed)
    clf, clf_acc, real_confidence = train_classifier(images, digits.target, verbose=0)
    print(f"digits classifier: holdout accuracy {clf_acc:.4f}, mean max-probability on real digits "
          f"{real_confidence:.4f}")

    gan = GAN(build_discriminator(), build_generator(), LATENT_DIM, seed=seed + 1337)
    gan.compile(d_optimizer=dl.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
                g_optimizer=dl.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
                loss_fn=dl.losses.BinaryCrossentropy())
    history = gan.fit(images, batch_size=64, epochs=epochs, verbose=verbose)
    print(f"after {epochs} epochs: d_loss {history.history['d_loss'][-1]:.4f}, "
          f"g_loss {history.history['g_loss'][-1]:.4f}")

    noise = dl.random.normal((n_samples, LATENT_DIM), seed=seed + 7)
    samples = np.asarray(gan.generator.predict(noise, verbose=0))
    grid_path = os.path.join(output_dir, "gan_digits_samples.png")
    save_grid(samples[:64], grid_path)
    print(f"saved {grid_path}")

    probs = clf.predict(samples.reshape(n_samples, -1), verbose=0)
    confidence = float(np.mean(np.max(probs, axis=1)))
    rng = np.random.default_rng(seed)
    noise_images = rng.uniform(-1, 1, size=(n_samples, 64)).astype(np.float32)
    noise_confidence = float(np.mean(np.max(clf.predict(noise_images, verbose=0), axis=1)))
    shares = class_histogram(probs)
    collapsed, covered = mode_collapse(shares)
    print("class shares of the generated samples: " + " ".join(f"{d}:{s:.2f}" for d, s in enumerate(shares)))
    print(f"{covered} of 10 classes hold >= {MIN_SHARE:.0%} of the samples"
          + ("  MODE COLLAPSE: too few digit classes generated" if collapsed else ""))
    print(f"classifier mean max-probability on uniform noise images {noise_confidence:.4f}")
    print(f"generated confidence {confidence:.4f}")

    target = os.environ.get("DLCORE_TARGET_CONFIDENCE")
    if target is not None:
        if collapsed:
            raise SystemExit(f"mode collapse: only {covered} classes hold >= {MIN_SHARE:.0%} of the samples "
                             f"(need {MIN_CLASSES})")
        if confidence < float(target):
            raise SystemExit(f"generated confidence {confidence:.4f} is below the target {float(target):.4f}")
    return confidence, shares


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
