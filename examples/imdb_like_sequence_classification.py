"""Sentiment-style sequence classification with Embedding(mask_zero=True) + LSTM, on synthetic
"reviews" of varying length (no download).

    python examples/imdb_like_sequence_classification.py

The data imitate IMDB's shape: token ids from a vocabulary of 2,000, reviews of 10 to 80 tokens
padded with 0 to a common length, a binary label. Most tokens are neutral; a review's label
decides which of two small sets of sentiment words dominate it, and a few words of the other
sentiment are mixed in, so the model has to weigh evidence spread over the sequence. The model
is the issue's: Embedding with mask_zero (padding is skipped by the recurrent layers),
Bidirectional LSTM returning sequences, a GRU, and a sigmoid unit, trained with Adam and
gradient clipping (clipnorm=1.0).

Set DLCORE_TARGET_ACC=0.88 to make the script fail unless the holdout accuracy reaches it.
"""
import os
import time

import numpy as np

import dlcore as dl

VOCAB = 2000
MAX_LEN = 80
POSITIVE = np.arange(2, 42)    # 40 "positive" word ids
NEGATIVE = np.arange(42, 82)   # 40 "negative" word ids
NEUTRAL = np.arange(82, VOCAB)


def make_reviews(n, rng):
    """(ids (n, MAX_LEN) int32 padded with 0 at the end, labels (n,) float32)."""
    labels = rng.integers(0, 2, size=n)
    ids = np.zeros((n, MAX_LEN), dtype=np.int32)
    for i, label in enumerate(labels):
        length = int(rng.integers(10, MAX_LEN + 1))
        review = rng.choice(NEUTRAL, size=length)
        n_strong = int(rng.integers(2, 6))
        n_weak = int(rng.integers(0, n_strong))  # always fewer words of the other sentiment
        own, other = (POSITIVE, NEGATIVE) if label == 1 else (NEGATIVE, POSITIVE)
        places = rng.choice(length, size=n_strong + n_weak, replace=False)
        review[places[:n_strong]] = rng.choice(own, size=n_strong)
        review[places[n_strong:]] = rng.choice(other, size=n_weak)
        ids[i, :length] = review
    return ids, labels.astype(np.float32)


def main():
    rng = np.random.default_rng(0)
    x_train, y_train = make_reviews(6000, rng)
    x_test, y_test = make_reviews(1000, rng)

    dl.utils.set_random_seed(0)
    model = dl.Sequential([
        dl.Input(shape=(None,), dtype="int32"),
        dl.layers.Embedding(VOCAB, 32, mask_zero=True),
        dl.layers.Bidirectional(dl.layers.LSTM(32, return_sequences=True)),
        dl.layers.GRU(16),
        dl.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=dl.optimizers.Adam(learning_rate=3e-3, clipnorm=1.0), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=5, batch_size=64, validation_split=0.1, verbose=verbose)
    print(f"training time {time.perf_counter() - start:.1f} s")

    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    # Padding is masked: the same review padded to twice the length scores the same.
    padded = np.concatenate([x_test[:8], np.zeros((8, MAX_LEN), np.int32)], axis=1)
    same = np.allclose(model.predict(padded, verbose=0), model.predict(x_test[:8], verbose=0), atol=1e-5)
    print(f"extra padding changes nothing: {same}")
    print(f"holdout loss {loss:.4f}  holdout accuracy {acc:.4f}")

    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and acc < float(target):
        raise SystemExit(f"holdout accuracy {acc:.4f} is below the target {float(target):.4f}")
    return acc


if __name__ == "__main__":
    main()
