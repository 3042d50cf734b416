"""TextVectorization: strings -> token ids (or multi_hot / count / tf_idf vectors), as Keras 3.

The pipeline is Keras's: standardize (ASCII lowercasing as ``tf.strings.lower``, and Keras's
punctuation class removed), split (on whitespace, into characters, or a callable), ngrams (joined
by a space), then a StringLookup with ``mask_token=""`` (index 0 pads, index 1 is OOV), which this
layer owns and delegates the vocabulary, ``adapt`` and the encodings to. ``int`` output is padded
with 0 to the longest row of the batch, or padded / truncated to ``output_sequence_length``.
A callable ``standardize`` receives a NumPy array of ``str`` and returns one of the same shape; a
callable ``split`` receives a 1-D array of ``str`` and returns one token list per element. In a
saved config a callable is stored by name and found again through ``custom_objects``.
"""
import re

import numpy as np

from ...registry import register
from ...symbolic import KerasTensor
from ...tensor import Tensor
from ..layer import Layer
from ._common import adapt_batches, as_array, check_choice
from .lookup import DROPPED, OUTPUT_MODES, StringLookup

STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT = ("whitespace", "character")
# Keras's class, verbatim (``,-\.`` is the range , - .)
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _check_option(name, value, options):
    if value is None or callable(value):
        return value
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"TextVectorization: `{name}` must be None, a callable or one of {list(options)}, "
                         f"received {name}={value!r}")
    return value


def _check_ngrams(ngrams):
    def is_width(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0

    if ngrams is None or is_width(ngrams):
        return ngrams
    if isinstance(ngrams, (tuple, list)) and ngrams and all(is_width(v) for v in ngrams):
        return tuple(int(v) for v in ngrams)
    raise ValueError("TextVectorization: `ngrams` must be None, a positive integer or a tuple of positive integers, "
                     f"received ngrams={ngrams!r}")


def _as_text(values, encoding):
    """An object array of ``str`` (bytes decoded with ``encoding``), same shape."""
    values = np.asarray(values)
    if values.dtype.kind not in "USO":
        raise TypeError(f"TextVectorization: expected string inputs, received dtype {values.dtype}")
    flat = [v.decode(encoding) if isinstance(v, bytes) else v for v in values.ravel().tolist()]
    odd = next((v for v in flat if not isinstance(v, str)), None)
    if odd is not None:
        raise TypeError(f"TextVectorization: expected string inputs, received an element of type "
                        f"{type(odd).__name__} ({odd!r})")
    return np.asarray(flat, dtype=object).reshape(values.shape)


def _ngrams(tokens, widths):
    """Keras's ``tf.strings.ngrams(tokens, widths, separator=" ")`` for one row."""
    return [" ".join(tokens[i:i + w]) for w in widths for i in range(len(tokens) - w + 1)]


@register("layer")
class TextVectorization(Layer):
    """Raw strings (batch,) or (batch, 1) -> int ids (batch, sequence_length) or encoded vectors
    (batch, depth); see the module docstring for the pipeline."""

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 ngrams=None, output_mode="int", output_sequence_length=None, pad_to_max_tokens=False,
                 vocabulary=None, idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 **kwargs):
        kwargs.pop("vocabulary_size", None)  # Keras writes it in its config; the vocabulary says it here
        kwargs.pop("has_input_vocabulary", None)
        super().__init__(name=name, **kwargs)
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        check_choice("TextVectorization", "output_mode", output_mode, set(OUTPUT_MODES))
        if output_mode == "one_hot":  # Keras accepts it, but it encodes one token per sample, not text
            raise ValueError("TextVectorization: output_mode='one_hot' is not supported; use 'int', "
                             "'multi_hot', 'count' or 'tf_idf'")
        self.standardize = _check_option("standardize", standardize, STANDARDIZE)
        self.split = _check_option("split", split, SPLIT)
        self.ngrams = _check_ngrams(ngrams)
        self._widths = tuple(range(1, self.ngrams + 1)) if isinstance(self.ngrams, int) else self.ngrams
        if output_sequence_length is not None:
            if output_mode != "int":
                raise ValueError("TextVectorization: `output_sequence_length` must not be set if `output_mode` is "
                                 f"not 'int', received output_sequence_length={output_sequence_length!r} with "
                                 f"output_mode={output_mode!r}")
            if not isinstance(output_sequence_length, (int, np.integer)) or isinstance(output_sequence_length, bool) \
                    or output_sequence_length < 1:
                raise ValueError("TextVectorization: `output_sequence_length` must be None or a positive integer, "
                                 f"received output_sequence_length={output_sequence_length!r}")
            output_sequence_length = int(output_sequence_length)
        if sparse or ragged:
            raise ValueError("TextVectorization: sparse=True and ragged=True are not supported (dlcore has no "
                             f"sparse or ragged tensors), received sparse={sparse!r}, ragged={ragged!r}")
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.encoding = encoding
        self._lookup_layer = StringLookup(max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
                                          pad_to_max_tokens=pad_to_max_tokens, mask_token="",
                                          output_mode=output_mode, encoding=encoding, name=f"{self.name}_lookup")

    def _takes_strings(self):
        return True

    def _casts_integer_inputs(self):
        return False

    # the vocabulary: StringLookup's ---------------------------------------------------------
    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights)

    def adapt(self, data, batch_size=None, steps=None):
        """Build the vocabulary from strings (an array, a list, or an iterable of batches): tokens
        by decreasing count, ties by the token in reverse order, at most ``max_tokens`` with ""
        and "[UNK]"; with tf_idf each string is a document."""
        def documents():
            for batch in adapt_batches("TextVectorization", data, batch_size, steps):
                yield from self._tokenize(batch)

        self._lookup_layer.adapt_documents(documents())

    # the pipeline ----------------------------------------------------------------------------
    def _standardized(self, text):
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = np.asarray([s.translate(ASCII_LOWER) for s in text.ravel()], dtype=object).reshape(text.shape)
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = np.asarray([PUNCTUATION.sub("", s) for s in text.ravel()], dtype=object).reshape(text.shape)
        if callable(self.standardize):
            result = np.asarray(self.standardize(text.astype(str)))
            if result.shape != text.shape:
                raise ValueError(f"TextVectorization '{self.name}': the `standardize` callable must return an array "
                                 f"of the input's shape {text.shape}, received shape {result.shape}")
            text = _as_text(result, self.encoding)
        return text

    def _tokenize(self, values):
        """The token rows of ``values``: a list (one per sample) of token lists."""
        text = _as_text(values, self.encoding)
        if text.ndim == 0:
            raise ValueError(f"TextVectorization '{self.name}': expected a batch of strings, received a scalar")
        if self.split is not None:
            if text.ndim > 2 or (text.ndim == 2 and text.shape[1] != 1):
                raise ValueError(f"TextVectorization '{self.name}': when splitting strings, the input rank must be 1 "
                                 f"or the last dimension must be 1, received inputs.shape={text.shape}")
            text = text.reshape(-1)
        elif text.ndim > 2:
            raise ValueError(f"TextVectorization '{self.name}': with split=None the input must be (batch,) or "
                             f"(batch, tokens), received inputs.shape={text.shape}")
        text = self._standardized(text)
        if self.split == "whitespace":
            rows = [s.split() for s in text]
        elif self.split == "character":
            rows = [list(s) for s in text]
        elif callable(self.split):
            rows = [[str(t) for t in _as_text(row, self.encoding).ravel()]
                    for row in self.split(text.astype(str))]
            if len(rows) != len(text):
                raise ValueError(f"TextVectorization '{self.name}': the `split` callable must return one token list "
                                 f"per string ({len(text)}), received {len(rows)}")
        else:
            rows = [list(row) for row in text.reshape(len(text), -1)]
        if self._widths:
            rows = [_ngrams(row, self._widths) for row in rows]
        return rows

    def call(self, inputs):
        lookup = self._lookup_layer
        if lookup._vocab is None:
            raise ValueError(f"TextVectorization '{self.name}': the vocabulary is not set: pass `vocabulary` or call "
                             "adapt() first")
        rows = self._tokenize(as_array(inputs))
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        flat = np.asarray([t for r in rows for t in r], dtype=object)
        ids = lookup._lookup(flat)
        width = self.output_sequence_length if self.output_sequence_length is not None else int(
            lengths.max(initial=0))
        positions = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = positions < width
        row_of = np.repeat(np.arange(len(rows)), lengths)
        if self.output_mode == "int":
            out = np.zeros((len(rows), width), dtype=np.int64)
            out[row_of[keep], positions[keep]] = ids[keep]
            return Tensor(out)
        dense = np.full((len(rows), int(lengths.max(initial=0))), DROPPED, dtype=np.int64)
        dense[row_of, positions] = ids
        return Tensor(lookup.encode(dense))

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return (input_shape[0], self.output_sequence_length)
        lookup = self._lookup_layer
        depth = lookup.max_tokens if lookup.pad_to_max_tokens else (
            lookup.vocabulary_size() if lookup._vocab is not None else None)
        return (input_shape[0], depth)

    def compute_output_spec(self, inputs, *args, **kwargs):
        """From the formula: the layer cannot run on the zero-filled stand-ins other layers use."""
        shape = self.compute_output_shape(tuple(inputs.shape))
        return KerasTensor(shape, "int64" if self.output_mode == "int" else self.dtype)

    @staticmethod
    def _serialize_callable(value):
        if not callable(value):
            return value
        return {"class_name": "function", "config": getattr(value, "__name__", repr(value))}

    def get_config(self):
        lookup = self._lookup_layer
        vocab_config = lookup.get_config()
        return {**super().get_config(), "max_tokens": lookup.max_tokens,
                "standardize": self._serialize_callable(self.standardize),
                "split": self._serialize_callable(self.split),
                "ngrams": list(self.ngrams) if isinstance(self.ngrams, tuple) else self.ngrams,
                "output_mode": self.output_mode, "output_sequence_length": self.output_sequence_length,
                "pad_to_max_tokens": lookup.pad_to_max_tokens, "vocabulary": vocab_config["vocabulary"],
                "idf_weights": vocab_config["idf_weights"], "sparse": False, "ragged": False,
                "encoding": self.encoding}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("standardize", "split"):
            value = config.get(key)
            if isinstance(value, dict):
                name = value.get("config")
                found = (custom_objects or {}).get(name)
                if found is None:
                    raise ValueError(f"TextVectorization: the config's `{key}` is the function {name!r}; pass it in "
                                     f"custom_objects={{{name!r}: function}} to load it")
                config[key] = found
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)
