"""Categorical preprocessing: CategoryEncoding, StringLookup, IntegerLookup, Hashing, Discretization.

Lookup index layout (Keras): ``[mask_token] + [oov] * num_oov_indices + vocabulary``. The adapted
or given vocabulary (and tf_idf weights) are part of ``get_config``, so a saved model carries them
(Keras keeps an adapted vocabulary in the file's assets instead; the values are the same).
Lookups are vectorized (a sorted-key search), never a Python loop per element.
"""
import collections

import numpy as np

from ...registry import register
from ...tensor import Tensor
from ..layer import Layer, positive_int
from ._common import adapt_batches, as_array, check_choice
from .hashing import fingerprint64_buckets

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
DROPPED = -1  # an index that counts for nothing in the multi_hot / count / tf_idf encodings


def encode_categorical(indices, output_mode, depth, dtype, weights=None):
    """Integer ``indices`` -> one_hot (..., depth) (a trailing axis of 1 is replaced), or multi_hot /
    count / tf_idf (batch, depth) counted over the last axis (a rank-1 input is one id per sample)."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= depth):
        raise ValueError(f"CategoryEncoding: input values must be in the range 0 <= values < num_tokens with "
                         f"num_tokens={depth}, received values in [{indices.min()}, {indices.max()}]")
    if output_mode == "one_hot":
        if indices.ndim > 1 and indices.shape[-1] == 1:
            indices = indices[..., 0]
        out = np.zeros(indices.shape + (depth,), dtype=dtype)
        np.put_along_axis(out, indices[..., None], 1, axis=-1)
        return out
    if indices.ndim <= 1:
        indices = indices.reshape(-1, 1)
    flat = indices.reshape(-1, indices.shape[-1])
    rows = np.repeat(np.arange(flat.shape[0]), flat.shape[1])
    out = np.zeros((flat.shape[0], depth), dtype=np.float64)
    np.add.at(out, (rows, flat.ravel()), 1)
    if output_mode == "multi_hot":
        out = np.minimum(out, 1)
    elif output_mode == "tf_idf":
        out = out * weights
    return out.reshape(indices.shape[:-1] + (depth,)).astype(dtype)


class _IdLayer(Layer):
    """A layer whose integer inputs stay integers (ids), and whose outputs carry no gradient."""

    def _casts_integer_inputs(self):
        return False


@register("layer")
class CategoryEncoding(_IdLayer):
    """Integer ids in [0, num_tokens) -> one_hot, multi_hot (default) or count vectors."""

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        self.num_tokens = positive_int("CategoryEncoding", "num_tokens", num_tokens)
        self.output_mode = check_choice("CategoryEncoding", "output_mode", output_mode,
                                        {"one_hot", "multi_hot", "count"})
        if sparse:
            raise ValueError("CategoryEncoding: sparse=True is not supported (dlcore has no sparse tensors); "
                             "use sparse=False")
        self.sparse = False

    def call(self, inputs, count_weights=None):
        ids = as_array(inputs)
        if ids.dtype.kind == "f":
            if not np.all(np.mod(ids, 1) == 0):
                raise ValueError(f"CategoryEncoding '{self.name}': expected integer ids, received non-integer values")
        if ids.dtype.kind not in "iuf":
            raise TypeError(f"CategoryEncoding '{self.name}': expected integer ids, received dtype {ids.dtype}")
        out = encode_categorical(ids.astype(np.int64), self.output_mode, self.num_tokens, np.float64)
        if count_weights is not None and self.output_mode == "count":
            ids2 = ids.astype(np.int64).reshape(-1, 1) if ids.ndim <= 1 else ids.astype(np.int64)
            weights = np.broadcast_to(as_array(count_weights).reshape(ids2.shape), ids2.shape)
            out = np.zeros((ids2.shape[0], self.num_tokens))
            np.add.at(out, (np.repeat(np.arange(ids2.shape[0]), ids2.shape[1]), ids2.ravel()), weights.ravel())
        return Tensor(out.astype(self.dtype))

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens, "output_mode": self.output_mode,
                "sparse": self.sparse}


class IndexLookup(_IdLayer):
    """Shared by StringLookup and IntegerLookup: tokens <-> indices, adapt, the output modes."""

    _strings = True

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary, idf_weights, invert,
                 output_mode, pad_to_max_tokens, sparse, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        self.max_tokens = positive_int(who, "max_tokens", max_tokens, allow_none=True)
        if not isinstance(num_oov_indices, (int, np.integer)) or isinstance(num_oov_indices, bool) \
                or num_oov_indices < 0:
            raise ValueError(f"{who}: `num_oov_indices` must be a non-negative integer, received "
                             f"num_oov_indices={num_oov_indices!r}")
        self.output_mode = check_choice(who, "output_mode", output_mode, set(OUTPUT_MODES))
        if invert and output_mode != "int":
            raise ValueError(f"{who}: `output_mode` must be 'int' when `invert` is true, received "
                             f"output_mode={output_mode!r}")
        if sparse:
            raise ValueError(f"{who}: sparse=True is not supported (dlcore has no sparse tensors)")
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.invert = bool(invert)
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.sparse = False
        self._vocab = None
        self.idf_weights = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError(f"{who}: `idf_weights` needs a `vocabulary`")

    # vocabulary ------------------------------------------------------------------------------
    def _has_mask_index(self):
        """Keras gives the mask token index 0 in 'int' mode only; the other modes drop masked inputs."""
        return self.mask_token is not None and self.output_mode == "int"

    def _special_tokens(self):
        return ([self.mask_token] if self._has_mask_index() else []) + [self.oov_token] * self.num_oov_indices

    def _token_start(self):
        return self._has_mask_index() + self.num_oov_indices

    def _as_tokens(self, values):
        values = np.asarray(values)
        if self._strings:
            return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()],
                              dtype=object).reshape(values.shape)
        if values.dtype.kind == "f" and values.size and not np.all(np.mod(values, 1) == 0):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected integer tokens, received floats")
        if values.dtype.kind not in "iuf":
            raise TypeError(f"{type(self).__name__} '{self.name}': expected integer tokens, received dtype "
                            f"{values.dtype}")
        return values.astype(np.int64)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the vocabulary (a list or array of tokens, without the special tokens unless they
        lead it, as Keras accepts) and, for tf_idf, its weights."""
        who = type(self).__name__
        tokens = list(self._as_tokens(np.asarray(list(vocabulary), dtype=object if self._strings else None)).ravel())
        special = self._special_tokens()
        if tokens[:len(special)] == special and special:
            tokens = tokens[len(special):]
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError(f"{who}: the passed vocabulary has at least one repeated term: {repeated}")
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(f"{who}: the vocabulary contains the mask token {self.mask_token!r} after the special "
                             "tokens")
        if self.num_oov_indices and self.oov_token in tokens:
            raise ValueError(f"{who}: the vocabulary contains the OOV token {self.oov_token!r} after the special "
                             "tokens")
        if self.max_tokens is not None and len(tokens) + self._token_start() > self.max_tokens:
            raise ValueError(f"{who}: a vocabulary of {len(tokens) + self._token_start()} entries (with the special "
                             f"tokens) is larger than max_tokens={self.max_tokens}")
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(f"{who}: `idf_weights` must be set with the vocabulary when output_mode='tf_idf'")
            idf = np.asarray(idf_weights, dtype=np.float64).ravel()
            if len(idf) == len(tokens):
                idf = np.concatenate([np.full(self._token_start(), idf.mean() if len(idf) else 0.0), idf])
            if len(idf) != len(tokens) + self._token_start():
                raise ValueError(f"{who}: `idf_weights` must have one weight per vocabulary token, received "
                                 f"{len(idf)} for {len(tokens)} tokens")
            self.idf_weights = idf
        self._vocab = tokens
        self._keys = np.asarray(tokens, dtype=object if self._strings else np.int64)
        self._order = np.argsort(self._keys, kind="stable") if tokens else np.zeros(0, np.intp)
        self._sorted = self._keys[self._order]

    def get_vocabulary(self, include_special_tokens=True):
        vocab = list(self._vocab or [])
        return self._special_tokens() + vocab if include_special_tokens else vocab

    def vocabulary_size(self):
        return self._token_start() + len(self._vocab or [])

    def adapt(self, data, batch_size=None, steps=None):
        """Build the vocabulary from ``data``: tokens by decreasing frequency, ties broken by the
        token in reverse order (Keras's lexsort), at most ``max_tokens`` entries with the specials."""
        def documents():  # each row of a batch is a document (for tf_idf); a rank-1 batch holds one token per row
            for batch in adapt_batches(type(self).__name__, data, batch_size, steps):
                tokens = self._as_tokens(batch)
                yield from (tokens.reshape(len(tokens), -1) if tokens.ndim > 1 else tokens.reshape(-1, 1)).tolist()

        self.adapt_documents(documents())

    def adapt_documents(self, documents):
        """Build the vocabulary (and tf_idf weights) from ``documents``, an iterable of token lists
        of any lengths (TextVectorization passes its split, ragged rows here)."""
        counts, doc_counts, n_documents = collections.Counter(), collections.Counter(), 0
        for document in documents:
            counts.update(document)
            doc_counts.update(set(document))
            n_documents += 1
        for special in ([self.mask_token] if self.mask_token is not None else []) + \
                ([self.oov_token] if self.num_oov_indices else []):
            counts.pop(special, None)
            doc_counts.pop(special, None)
        keys = list(counts)
        order = np.lexsort((np.asarray(keys, dtype=object if self._strings else np.int64),
                            np.asarray([counts[k] for k in keys])))[::-1] if keys else []
        vocab = [keys[i] for i in order]
        if self.max_tokens is not None:
            vocab = vocab[:max(self.max_tokens - self._token_start(), 0)]
        idf = None
        if self.output_mode == "tf_idf":
            idf = np.log(1 + n_documents / (1 + np.asarray([doc_counts[t] for t in vocab], dtype=np.float64)))
        self.set_vocabulary(vocab, idf)

    # lookup ----------------------------------------------------------------------------------
    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens and self.max_tokens else self.vocabulary_size()

    def _lookup(self, tokens):
        flat = tokens.ravel()
        out = np.full(flat.shape, -1, dtype=np.int64)
        if len(self._sorted):
            pos = np.clip(np.searchsorted(self._sorted, flat), 0, len(self._sorted) - 1)
            found = self._sorted[pos] == flat
            out[found] = self._order[pos[found]] + self._token_start()
        oov = out < 0
        if self.mask_token is not None:
            is_mask = flat == self.mask_token
            out[is_mask] = 0 if self._has_mask_index() else DROPPED
            oov &= ~is_mask
        if oov.any():
            if self.num_oov_indices == 0:
                raise ValueError(f"{type(self).__name__} '{self.name}': when `num_oov_indices=0` all inputs should "
                                 f"be in vocabulary, found OOV values {flat[oov][:5].tolist()}; consider setting "
                                 "`num_oov_indices=1`.")
            start = int(self._has_mask_index())
            if self.num_oov_indices == 1:
                out[oov] = start
            elif self._strings:
                out[oov] = start + fingerprint64_buckets(flat[oov], self.num_oov_indices)
            else:
                out[oov] = start + np.mod(flat[oov], self.num_oov_indices)
        return out.reshape(tokens.shape)

    def call(self, inputs):
        if self._vocab is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the vocabulary is not set: pass `vocabulary` "
                             "or call adapt() first")
        values = as_array(inputs)
        if self.invert:
            ids = values.astype(np.int64)
            table = np.asarray(self.get_vocabulary(), dtype=object if self._strings else np.int64)
            bad = (ids < 0) | (ids >= len(table))
            out = table[np.clip(ids, 0, max(len(table) - 1, 0))]
            if bad.any():
                out = np.where(bad, self.oov_token, out)
            return Tensor(out if self._strings else out.astype(np.int64))
        ids = self._lookup(self._as_tokens(values))
        if self.output_mode == "int":
            return Tensor(ids)
        return Tensor(self.encode(ids))

    def encode(self, ids):
        """Indices (from ``_lookup``; DROPPED entries count for nothing) -> the output mode's
        vectors, (batch, depth) counted over the last axis."""
        depth = self._depth()
        if not (ids == DROPPED).any():
            return encode_categorical(ids, self.output_mode, depth, self.dtype, self._depth_weights(depth))
        # the dropped entries land in one extra column, removed after counting
        weights = None if self.idf_weights is None else np.append(self._depth_weights(depth), 0.0)
        out = encode_categorical(np.where(ids == DROPPED, depth, ids), self.output_mode, depth + 1, self.dtype,
                                 weights)
        return out[..., :depth]

    def _depth_weights(self, depth):
        """The tf_idf weights over ``depth`` columns (zeros past the vocabulary, as Keras pads them)."""
        if self.idf_weights is None:
            return None
        weights = np.zeros(depth)
        weights[:min(depth, len(self.idf_weights))] = self.idf_weights[:depth]
        return weights

    def get_config(self):
        idf = None if self.idf_weights is None else self.idf_weights[self._token_start():].tolist()
        vocab = None if self._vocab is None else [t if self._strings else int(t) for t in self._vocab]
        return {**super().get_config(), "max_tokens": self.max_tokens, "num_oov_indices": self.num_oov_indices,
                "mask_token": self.mask_token, "oov_token": self.oov_token, "vocabulary": vocab,
                "idf_weights": idf, "invert": self.invert, "output_mode": self.output_mode,
                "pad_to_max_tokens": self.pad_to_max_tokens, "sparse": self.sparse}


@register("layer")
class StringLookup(IndexLookup):
    """Strings -> integer indices (or one_hot / multi_hot / count / tf_idf vectors); ``invert``
    maps indices back to strings."""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]", vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", pad_to_max_tokens=False, sparse=False,
                 encoding="utf-8", **kwargs):
        self.encoding = encoding
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, vocabulary, idf_weights, invert,
                         output_mode, pad_to_max_tokens, sparse, **kwargs)

    def _takes_strings(self):
        return True

    def get_config(self):
        return {**super().get_config(), "encoding": self.encoding}


@register("layer")
class IntegerLookup(IndexLookup):
    """Integer tokens -> contiguous indices (or encoded vectors); ``invert`` maps back."""

    _strings = False

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1, vocabulary=None,
                 vocabulary_dtype="int64", idf_weights=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, **kwargs):
        self.vocabulary_dtype = vocabulary_dtype
        super().__init__(max_tokens, num_oov_indices, None if mask_token is None else int(mask_token),
                         int(oov_token), vocabulary, idf_weights, invert, output_mode, pad_to_max_tokens, sparse,
                         **kwargs)

    def get_config(self):
        return {**super().get_config(), "vocabulary_dtype": self.vocabulary_dtype}


@register("layer")
class Discretization(_IdLayer):
    """Buckets numbers by ``bin_boundaries`` (bucket i holds [b[i-1], b[i])), or by ``num_bins``
    quantile boundaries learned with ``adapt``; ``output_mode`` int / one_hot / multi_hot / count."""

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int", sparse=False,
                 **kwargs):
        super().__init__(**kwargs)
        if (bin_boundaries is None and num_bins is None) or (
                bin_boundaries is not None and num_bins is not None and len(bin_boundaries) != num_bins - 1):
            raise ValueError("Discretization: give `bin_boundaries` or `num_bins` (both only when "
                             "len(bin_boundaries) == num_bins - 1), received "
                             f"bin_boundaries={bin_boundaries!r}, num_bins={num_bins!r}")
        self.output_mode = check_choice("Discretization", "output_mode", output_mode,
                                        {"int", "one_hot", "multi_hot", "count"})
        if sparse:
            raise ValueError("Discretization: sparse=True is not supported (dlcore has no sparse tensors)")
        self.sparse = False
        self.num_bins = positive_int("Discretization", "num_bins", num_bins, allow_none=True)
        self.epsilon = float(epsilon)
        if bin_boundaries is not None:
            bin_boundaries = [float(b) for b in bin_boundaries]
            if any(b > a for b, a in zip(bin_boundaries, bin_boundaries[1:])):
                raise ValueError(f"Discretization: `bin_boundaries` must be sorted, received {bin_boundaries}")
        self.bin_boundaries = bin_boundaries

    def adapt(self, data, batch_size=None, steps=None):
        """Learn ``num_bins - 1`` boundaries at the data's exact quantiles (Keras uses an approximate
        quantile summary with ``epsilon``, so its boundaries can differ slightly on large data)."""
        if self.num_bins is None:
            raise ValueError("Discretization: adapt() needs `num_bins` (the layer was given bin_boundaries)")
        values = np.concatenate([np.asarray(b, dtype=np.float64).ravel()
                                 for b in adapt_batches("Discretization", data, batch_size, steps)])
        quantiles = np.linspace(0, 1, self.num_bins + 1)[1:-1]
        self.bin_boundaries = np.quantile(values, quantiles).tolist()

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(f"Discretization '{self.name}': call adapt() first, or pass `bin_boundaries`")
        x = as_array(inputs)
        ids = np.searchsorted(np.asarray(self.bin_boundaries), x, side="right").astype(np.int64)
        if self.output_mode == "int":
            return Tensor(ids)
        depth = len(self.bin_boundaries) + 1
        return Tensor(encode_categorical(ids, self.output_mode, depth, self.dtype))

    def get_config(self):
        return {**super().get_config(), "bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins,
                "epsilon": self.epsilon, "output_mode": self.output_mode, "sparse": self.sparse}
