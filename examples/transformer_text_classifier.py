"""Text classification with a Transformer (keras.io's "Text classification with Transformer"), on
real text that ships with Python: which standard-library package a snippet of source comes from.

    python examples/transformer_text_classifier.py

The model is keras.io's code with only the import changed (``keras`` -> ``dlcore``, plus the
``get_config`` that saving a subclassed layer needs in Keras too): TokenAndPositionEmbedding and
TransformerBlock written as Layer subclasses (MultiHeadAttention, LayerNormalization, Dropout, a
Dense feed-forward network), GlobalAveragePooling1D, Dropout, Dense, softmax.

The task (no download, deterministic): the ``.py`` files of four standard-library packages of
this interpreter (``asyncio``, ``email``, ``unittest``, ``xml``) are cut into snippets of
``LINES`` consecutive non-blank lines; a snippet's label is its package. Words and punctuation
are the tokens (the ``VOCAB`` most frequent in the training files; the rest map to 1). Files, not
snippets, are split: every file's snippets are either all training or all holdout (one file in
four, chosen by a seeded shuffle, is held out), so the model must generalise to unseen files.
Classes are balanced by sampling ``PER_CLASS`` snippets of each.

The script trains with ``fit``, saves to ``.keras``, loads it back, checks that the loaded model
predicts the same, and reports the holdout accuracy of the loaded model (0.79 here: unseen
files are harder than the validation split, whose snippets come from the training files).

Set DLCORE_TARGET_ACC=0.75 to make the script fail unless the holdout accuracy reaches it.
"""
import collections
import os
import re
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

import dlcore as keras
from dlcore import layers

PACKAGES = ("asyncio", "email", "unittest", "xml")
LINES = 4          # non-blank lines per snippet
MAXLEN = 64        # tokens per snippet (cut or padded with 0)
VOCAB = 4000
PER_CLASS = 1200   # training snippets per class (holdout: PER_CLASS // 4)
TOKEN = re.compile(r"[A-Za-z_]+|\d+|[^\sA-Za-z_\d]")


# ---- keras.io: Transformer block and embedding layers ----------------------------------------
class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)
        self.config = dict(embed_dim=embed_dim, num_heads=num_heads, ff_dim=ff_dim, rate=rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)

    def get_config(self):
        return {**super().get_config(), **self.config}


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)
        self.config = dict(maxlen=maxlen, vocab_size=vocab_size, embed_dim=embed_dim)

    def call(self, x):
        maxlen = keras.ops.shape(x)[-1]
        positions = keras.ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions

    def get_config(self):
        return {**super().get_config(), **self.config}


def build_model(embed_dim=32, num_heads=2, ff_dim=32):
    inputs = layers.Input(shape=(MAXLEN,))
    embedding_layer = TokenAndPositionEmbedding(MAXLEN, VOCAB, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
    x = transformer_block(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(len(PACKAGES), activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


# ---- the data: snippets of standard-library source ------------------------------------------------
def package_files(package):
    root = Path(sysconfig.get_paths()["stdlib"]) / package
    return sorted(p for p in root.rglob("*.py") if "test" not in p.relative_to(root).parts[:-1])


def snippets(path):
    """Token lists of consecutive LINES-line windows (stride LINES) of a file's non-blank lines."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return [TOKEN.findall(" ".join(lines[i:i + LINES])) for i in range(0, len(lines) - LINES + 1, LINES)]


def load_data(rng):
    """(train, holdout) lists of (tokens, label), files split 3:1 per package, classes balanced."""
    train, holdout = [], []
    for label, package in enumerate(PACKAGES):
        files = package_files(package)
        order = rng.permutation(len(files))
        held = {files[i] for i in order[: max(1, len(files) // 4)]}
        tr = [(s, label) for f in files if f not in held for s in snippets(f)]
        ho = [(s, label) for f in sorted(held) for s in snippets(f)]
        train += [tr[i] for i in rng.choice(len(tr), PER_CLASS, replace=len(tr) < PER_CLASS)]
        holdout += [ho[i] for i in rng.choice(len(ho), PER_CLASS // 4, replace=len(ho) < PER_CLASS // 4)]
    order = rng.permutation(len(train))  # validation_split takes the last 10%: all classes
    return [train[i] for i in order], holdout


def vectorize(samples, index):
    x = np.zeros((len(samples), MAXLEN), np.int32)
    for i, (tokens, _) in enumerate(samples):
        ids = [index.get(t, 1) for t in tokens[:MAXLEN]]
        x[i, :len(ids)] = ids
    return x, np.array([label for _, label in samples], np.int64)


def main():
    rng = np.random.default_rng(0)
    train, holdout = load_data(rng)
    counts = collections.Counter(t for tokens, _ in train for t in tokens)
    index = {t: i + 2 for i, (t, _) in enumerate(counts.most_common(VOCAB - 2))}  # 0: padding, 1: unknown
    x_train, y_train = vectorize(train, index)
    x_test, y_test = vectorize(holdout, index)
    print(f"{len(x_train)} training and {len(x_test)} holdout snippets of {LINES} lines from {', '.join(PACKAGES)}")

    keras.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=4, validation_split=0.1, verbose=verbose)
    print(f"training time {time.perf_counter() - start:.1f} s")

    out_dir = os.environ.get("DLCORE_EXAMPLES_OUT") or tempfile.mkdtemp(prefix="dlcore-transformer-")
    path = os.path.join(out_dir, "transformer_text_classifier.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects={"TransformerBlock": TransformerBlock,
                                                           "TokenAndPositionEmbedding": TokenAndPositionEmbedding})
    probs = loaded.predict(x_test, verbose=0)
    same = np.allclose(probs, model.predict(x_test, verbose=0), atol=1e-5)
    print(f"saved to {path}; the loaded model predicts the same: {same}")
    acc = float(np.mean(np.argmax(probs, axis=-1) == y_test))
    for label, package in enumerate(PACKAGES):
        mine = y_test == label
        print(f"  {package:9s} recall {np.mean(np.argmax(probs[mine], axis=-1) == label):.3f}")
    print(f"holdout accuracy {acc:.4f}")

    target = os.environ.get("DLCORE_TARGET_ACC")
    if target is not None and (acc < float(target) or not same):
        raise SystemExit(f"holdout accuracy {acc:.4f} is below the target {float(target):.4f}"
                         if acc < float(target) else "the loaded model predicts differently")
    return acc


if __name__ == "__main__":
    main()
