"""Hashing: values -> bins by FarmHash Fingerprint64, as Keras (``tf.strings.to_hash_bucket_fast``).

Every value is hashed as its string form (integers as decimal text, as Keras's ``as_string``);
the bin is ``fingerprint64(bytes) % num_bins`` (with ``mask_value``: 0 for the mask, else
``1 + fingerprint % (num_bins - 1)``). Fingerprint64 is farmhash's ``farmhashna::Hash64``,
written here in Python integers (one call per distinct value, then a vectorized gather).
Salted hashing (``salt``, SipHash in Keras) is not provided: a ``salt`` is refused clearly.
"""
import numpy as np

from ...registry import register
from ...tensor import Tensor
from ..layer import Layer, positive_int
from ._common import as_array, check_choice

_M = (1 << 64) - 1
K0, K1, K2 = 0xC3A5C85C97CB3127, 0xB492B66FBE98F273, 0x9AE16A3B2F90404F


def _f64(s, i):
    return int.from_bytes(s[i:i + 8], "little")


def _f32(s, i):
    return int.from_bytes(s[i:i + 4], "little")


def _rot(v, r):
    return ((v >> r) | (v << (64 - r))) & _M if r else v


def _shift_mix(v):
    return v ^ (v >> 47)


def _hash16(u, v, mul):
    a = ((u ^ v) * mul) & _M
    a ^= a >> 47
    b = ((v ^ a) * mul) & _M
    b ^= b >> 47
    return (b * mul) & _M


def _len0to16(s):
    n = len(s)
    if n >= 8:
        mul = K2 + n * 2
        a = (_f64(s, 0) + K2) & _M
        b = _f64(s, n - 8)
        c = (_rot(b, 37) * mul + a) & _M
        d = ((_rot(a, 25) + b) * mul) & _M
        return _hash16(c, d, mul)
    if n >= 4:
        mul = K2 + n * 2
        return _hash16((n + (_f32(s, 0) << 3)) & _M, _f32(s, n - 4), mul)
    if n > 0:
        y = s[0] + (s[n >> 1] << 8)
        z = n + (s[n - 1] << 2)
        return (_shift_mix(((y * K2) ^ (z * K0)) & _M) * K2) & _M
    return K2


def _len17to32(s):
    n = len(s)
    mul = K2 + n * 2
    a = (_f64(s, 0) * K1) & _M
    b = _f64(s, 8)
    c = (_f64(s, n - 8) * mul) & _M
    d = (_f64(s, n - 16) * K2) & _M
    return _hash16((_rot((a + b) & _M, 43) + _rot(c, 30) + d) & _M, (a + _rot((b + K2) & _M, 18) + c) & _M, mul)


def _len33to64(s):
    n = len(s)
    mul = K2 + n * 2
    a = (_f64(s, 0) * K2) & _M
    b = _f64(s, 8)
    c = (_f64(s, n - 8) * mul) & _M
    d = (_f64(s, n - 16) * K2) & _M
    y = (_rot((a + b) & _M, 43) + _rot(c, 30) + d) & _M
    z = _hash16(y, (a + _rot((b + K2) & _M, 18) + c) & _M, mul)
    e = (_f64(s, 16) * mul) & _M
    f = _f64(s, 24)
    g = ((y + _f64(s, n - 32)) * mul) & _M
    h = ((z + _f64(s, n - 24)) * mul) & _M
    return _hash16((_rot((e + f) & _M, 43) + _rot(g, 30) + h) & _M, (e + _rot((f + a) & _M, 18) + g) & _M, mul)


def _weak32(s, i, a, b):
    w, x, y, z = _f64(s, i), _f64(s, i + 8), _f64(s, i + 16), _f64(s, i + 24)
    a = (a + w) & _M
    b = _rot((b + a + z) & _M, 21)
    c = a
    a = (a + x + y) & _M
    b = (b + _rot(a, 44)) & _M
    return (a + z) & _M, (b + c) & _M


def fingerprint64(s):
    """FarmHash Fingerprint64 of the bytes ``s`` (an int in [0, 2**64))."""
    n = len(s)
    if n <= 16:
        return _len0to16(s)
    if n <= 32:
        return _len17to32(s)
    if n <= 64:
        return _len33to64(s)
    x, y = 81, (81 * K1 + 113) & _M
    z = (_shift_mix((y * K2 + 113) & _M) * K2) & _M
    v, w = (0, 0), (0, 0)
    x = (x * K2 + _f64(s, 0)) & _M
    i, end = 0, ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    while True:
        x = (_rot((x + y + v[0] + _f64(s, i + 8)) & _M, 37) * K1) & _M
        y = (_rot((y + v[1] + _f64(s, i + 48)) & _M, 42) * K1) & _M
        x ^= w[1]
        y = (y + v[0] + _f64(s, i + 40)) & _M
        z = (_rot((z + w[0]) & _M, 33) * K1) & _M
        v = _weak32(s, i, (v[1] * K1) & _M, (x + w[0]) & _M)
        w = _weak32(s, i + 32, (z + w[1]) & _M, (y + _f64(s, i + 16)) & _M)
        z, x = x, z
        i += 64
        if i == end:
            break
    mul = K1 + ((z & 0xFF) << 1)
    i = last64
    w = ((w[0] + ((n - 1) & 63)) & _M, w[1])
    v = ((v[0] + w[0]) & _M, v[1])
    w = ((w[0] + v[0]) & _M, w[1])
    x = (_rot((x + y + v[0] + _f64(s, i + 8)) & _M, 37) * mul) & _M
    y = (_rot((y + v[1] + _f64(s, i + 48)) & _M, 42) * mul) & _M
    x ^= (w[1] * 9) & _M
    y = (y + v[0] * 9 + _f64(s, i + 40)) & _M
    z = (_rot((z + w[0]) & _M, 33) * mul) & _M
    v = _weak32(s, i, (v[1] * mul) & _M, (x + w[0]) & _M)
    w = _weak32(s, i + 32, (z + w[1]) & _M, (y + _f64(s, i + 16)) & _M)
    z, x = x, z
    return _hash16((_hash16(v[0], w[0], mul) + _shift_mix(y) * K0 + z) & _M,
                   (_hash16(v[1], w[1], mul) + x) & _M, mul)


def _as_text(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value)).encode()
    return str(value).encode()


def fingerprint64_buckets(values, num_buckets):
    """``fingerprint64(str(v)) % num_buckets`` for each value of an array (int64 array, same shape)."""
    values = np.asarray(values)
    uniques, inverse = np.unique(values.ravel(), return_inverse=True)
    buckets = np.asarray([fingerprint64(_as_text(u)) % num_buckets for u in uniques.tolist()], dtype=np.int64)
    return buckets[inverse].reshape(values.shape)


@register("layer")
class Hashing(Layer):
    """Strings or integers -> bin ids in [0, num_bins) (or one_hot / multi_hot / count vectors)."""

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = positive_int("Hashing", "num_bins", num_bins)
        if salt is not None:
            raise ValueError("Hashing: salted hashing (`salt`, SipHash64 in Keras) is not supported; use salt=None")
        if sparse:
            raise ValueError("Hashing: sparse=True is not supported (dlcore has no sparse tensors)")
        if mask_value is not None and self.num_bins < 2:
            raise ValueError(f"Hashing: `num_bins` must be at least 2 with a `mask_value`, received {num_bins}")
        self.mask_value = mask_value
        self.salt = None
        self.sparse = False
        self.output_mode = check_choice("Hashing", "output_mode", output_mode,
                                        {"int", "one_hot", "multi_hot", "count"})

    def _casts_integer_inputs(self):
        return False

    def _takes_strings(self):
        return True

    def call(self, inputs):
        from .lookup import encode_categorical

        values = as_array(inputs)
        if values.dtype.kind == "f":
            raise TypeError(f"Hashing '{self.name}': expected strings or integers, received dtype {values.dtype}")
        if self.mask_value is None:
            ids = fingerprint64_buckets(values, self.num_bins)
        else:
            ids = fingerprint64_buckets(values, self.num_bins - 1) + 1
            mask = values.astype(object) == self.mask_value
            ids[mask] = 0
        if self.output_mode == "int":
            return Tensor(ids)
        return Tensor(encode_categorical(ids, self.output_mode, self.num_bins, self.dtype))

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "mask_value": self.mask_value, "salt": self.salt,
                "output_mode": self.output_mode, "sparse": self.sparse}
