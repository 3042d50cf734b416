"""A GPT-style character-level language model trained on the Python standard library's own source.

    python examples/char_lm.py

The text (no download, the same on every Python 3 installation of a version): the ``.py``
files of the packages in ``PACKAGES`` of this interpreter's standard library, concatenated in
sorted order (a few hundred KB). Characters outside printable ASCII map to one "unknown" id. The
last 10% of the text is the validation split (unseen during training).

The model: token + learned position embeddings, two pre-norm decoder blocks (causal
MultiHeadAttention with ``use_causal_mask=True``, LayerNormalization, a Dense feed-forward
network, residuals), a final LayerNormalization and a Dense layer to the character logits; trained
with ``fit`` on random windows of the training text to predict every next character. The script
reports the validation perplexity (exp of the mean cross-entropy per character; a model knowing
only character frequencies scores about 25 here) and prints text sampled at temperature 0.8.

Set DLCORE_TARGET_PERPLEXITY=6.5 to make the script fail unless the validation perplexity is at
most that.
"""
import os
import string
import sysconfig
import time
from pathlib import Path

import numpy as np

import dlcore as dl
from dlcore import layers

PACKAGES = ("json", "email", "logging")
CHARS = string.printable[:-2]  # printable ASCII without \x0b \x0c
VOCAB = len(CHARS) + 1         # + unknown (id 0)
MAXLEN = 64
EMBED, HEADS, FFN, BLOCKS = 64, 4, 128, 2
WINDOWS = 6000                 # training windows per epoch
EPOCHS = 5


def load_text():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(f for p in PACKAGES for f in (root / p).rglob("*.py") if "test" not in f.parts)
    return "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def encode(text):
    table = np.zeros(128, np.int32)
    table[[ord(c) for c in CHARS]] = np.arange(1, VOCAB)
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    return np.where(codes < 128, table[np.minimum(codes, 127)], 0)


def decode(ids):
    return "".join(CHARS[i - 1] if i > 0 else "?" for i in ids)


def windows(ids, starts):
    """Inputs (n, MAXLEN) and next-character targets (n, MAXLEN) starting at ``starts``."""
    idx = starts[:, None] + np.arange(MAXLEN + 1)
    seq = ids[idx]
    return seq[:, :-1], seq[:, 1:].astype(np.int64)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(vocab_size, embed_dim)
        self.pos_emb = layers.Embedding(maxlen, embed_dim)

    def call(self, x):
        positions = dl.ops.arange(0, dl.ops.shape(x)[-1], 1)
        return self.token_emb(x) + self.pos_emb(positions)


class DecoderBlock(layers.Layer):
    """Pre-norm GPT block: x + attn(norm(x)) with a causal mask, then x + ffn(norm(x))."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads, dropout=rate)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)
        self.ffn = dl.Sequential([layers.Dense(ff_dim, activation="gelu"), layers.Dense(embed_dim)])
        self.dropout = layers.Dropout(rate)

    def call(self, x, training=False):
        h = self.norm1(x)
        x = x + self.att(h, h, use_causal_mask=True, training=training)
        return x + self.dropout(self.ffn(self.norm2(x)), training=training)


def build_model():
    inputs = layers.Input(shape=(MAXLEN,), dtype="int32")
    h = TokenAndPositionEmbedding(MAXLEN, VOCAB, EMBED)(inputs)
    for _ in range(BLOCKS):
        h = DecoderBlock(EMBED, HEADS, FFN)(h)
    logits = layers.Dense(VOCAB)(layers.LayerNormalization(epsilon=1e-5)(h))
    return dl.Model(inputs, logits)


def sample(model, prompt_ids, n, temperature, rng):
    """Continue ``prompt_ids`` by ``n`` characters, each drawn from softmax(logits / temperature)."""
    ids = list(prompt_ids)
    for _ in range(n):
        window = np.zeros((1, MAXLEN), np.int32)
        ctx = ids[-MAXLEN:]
        window[0, :len(ctx)] = ctx
        logits = np.asarray(model.predict_on_batch(window))[0, len(ctx) - 1].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(VOCAB, p=p / p.sum())))
    return ids[len(prompt_ids):]


def main():
    text = load_text()
    ids = encode(text)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    print(f"{len(text) / 1e3:.0f} KB of standard-library source ({', '.join(PACKAGES)}); "
          f"{len(train_ids)} training and {len(val_ids)} validation characters")
    rng = np.random.default_rng(0)
    x_val, y_val = windows(val_ids, np.arange(0, len(val_ids) - MAXLEN - 1, MAXLEN))

    dl.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer=dl.optimizers.Adam(learning_rate=3e-3),
                  loss=dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    verbose = int(os.environ.get("DLCORE_VERBOSE", "2"))
    start = time.perf_counter()
    for epoch in range(EPOCHS):  # fresh random windows each epoch
        x, y = windows(train_ids, rng.integers(0, len(train_ids) - MAXLEN - 1, WINDOWS))
        model.fit(x, y, batch_size=32, epochs=1, verbose=verbose)
    print(f"training time {time.perf_counter() - start:.1f} s")

    val_loss = float(model.evaluate(x_val, y_val, batch_size=256, verbose=0))
    perplexity = float(np.exp(val_loss))
    print(f"validation cross-entropy {val_loss:.4f} nats/char ({val_loss / np.log(2):.3f} bits/char)")
    print(f"validation perplexity {perplexity:.3f}")

    prompt = "    def "
    generated = decode(sample(model, encode(prompt), 200, 0.8, np.random.default_rng(1)))
    print("sampled at temperature 0.8:\n" + prompt + generated)

    target = os.environ.get("DLCORE_TARGET_PERPLEXITY")
    if target is not None and perplexity > float(target):
        raise SystemExit(f"validation perplexity {perplexity:.3f} is above the target {float(target):.3f}")
    return perplexity


if __name__ == "__main__":
    main()
