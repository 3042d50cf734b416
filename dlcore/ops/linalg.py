"""Tensor contractions and triangular masks: einsum, tril, triu (keras.ops names).

``einsum``'s backward is einsums too: the gradient of operand i contracts the output gradient
with the other operands onto operand i's subscripts; letters that only operand i sums over are
broadcast back, a repeated letter (a diagonal, "ii->i") is put back on the diagonal through an
identity, and dimensions broadcast from size 1 are summed.
"""
import string
from collections import Counter

import numpy as np

from ..autograd import Function
from .core import float_array, value


def _parse(subscripts, shapes):
    """(input terms, output term, letter sizes) with "..." expanded and implicit output made explicit."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: `subscripts` must be a string, received {type(subscripts).__name__}")
    s = subscripts.replace(" ", "")
    ins, arrow, out = s.partition("->")
    terms = ins.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: subscripts {subscripts!r} name {len(terms)} operands, received {len(shapes)}")
    letters = set(s) - set(".,->")
    if not all(c in string.ascii_letters for c in letters):
        raise ValueError(f"einsum: subscripts must be letters, '...', ',' and '->', received {subscripts!r}")
    free = [c for c in string.ascii_letters if c not in letters]
    ell_nd = max([len(shape) - (len(t) - 3) for t, shape in zip(terms, shapes) if "..." in t] or [0])
    ell = "".join(free[:ell_nd])
    expanded = []
    for t, shape in zip(terms, shapes):
        if "..." in t:
            n = len(shape) - (len(t) - 3)
            t = t.replace("...", ell[ell_nd - n:] if n > 0 else "")
        if len(t) != len(shape):
            raise ValueError(f"einsum: term {t!r} of {subscripts!r} has {len(t)} subscripts for an operand of "
                             f"shape {tuple(shape)}")
        expanded.append(t)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = Counter("".join(expanded))
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes = {}
    for t, shape in zip(expanded, shapes):
        for c, n in zip(t, shape):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum: subscript {c!r} of {subscripts!r} has sizes {sizes[c]} and {n}")
            sizes[c] = max(sizes.get(c, 1), n)
    missing = set(out) - set(sizes)
    if missing:
        raise ValueError(f"einsum: output subscripts {sorted(missing)} of {subscripts!r} name no input axis")
    return expanded, out, sizes


def _contract(terms, out, arrays):
    return np.einsum(",".join(terms) + "->" + out, *arrays, optimize=len(arrays) > 1)


class Einsum(Function):
    @staticmethod
    def forward(ctx, *arrays, spec):
        terms, out, _ = spec
        ctx.save(*arrays)
        ctx.spec = spec
        return _contract(terms, out, arrays)

    @staticmethod
    def backward(ctx, dy, needs):
        terms, out, sizes = ctx.spec
        arrays = ctx.saved
        grads = []
        for i, (term, x) in enumerate(zip(terms, arrays)):
            if not needs[i]:
                grads.append(None)
                continue
            others = [(t, a) for j, (t, a) in enumerate(zip(terms, arrays)) if j != i]
            uniq = "".join(dict.fromkeys(term))
            avail = set(out).union(*[set(t) for t, _ in others])
            target = "".join(c for c in uniq if c in avail)
            g = _contract([out] + [t for t, _ in others], target, [dy] + [a for _, a in others])
            g = g.reshape([sizes[c] if c in avail else 1 for c in uniq])
            g = np.broadcast_to(g, [sizes[c] for c in uniq])
            if len(uniq) < len(term):  # repeated letters: back onto the diagonal
                seen, full, eyes = set(), "", []
                spare = iter(c for c in string.ascii_letters if c not in sizes)
                for c in term:
                    if c in seen:
                        f = next(spare)
                        full += f
                        eyes.append((c + f, np.eye(sizes[c], dtype=g.dtype)))
                    else:
                        seen.add(c)
                        full += c
                g = _contract([uniq] + [t for t, _ in eyes], full, [g] + [e for _, e in eyes])
            axes = tuple(k for k, n in enumerate(x.shape) if n == 1 and g.shape[k] != 1)
            if axes:
                g = g.sum(axis=axes, keepdims=True)
            grads.append(g.astype(x.dtype))  # a contiguous copy (g may be a broadcast view)
        return tuple(grads)


def einsum(subscripts, *operands):
    """Einstein summation over ``operands`` (keras.ops.einsum), e.g. ``einsum("bqd,bkd->bqk", q, k)``;
    differentiable in every float operand."""
    if not operands:
        raise ValueError("einsum: expected at least one operand, received none")
    arrays = [np.asarray(value(x)) for x in operands]
    terms, out, sizes = _parse(subscripts, [a.shape for a in arrays])
    if any(a.dtype.kind == "f" for a in arrays):
        dtype = np.result_type(*[a.dtype for a in arrays if a.dtype.kind == "f"])
        operands = [x if np.asarray(value(x)).dtype == dtype else float_array(value(x), dtype) for x in operands]
    return Einsum.apply(*operands, spec=(terms, out, sizes))


class _Triangle(Function):
    @classmethod
    def forward(cls, ctx, x, k):
        ctx.k = k
        return cls.mask(x, k)

    @classmethod
    def backward(cls, ctx, dy, needs):
        return (cls.mask(dy, ctx.k), None)


class Tril(_Triangle):
    mask = staticmethod(np.tril)


class Triu(_Triangle):
    mask = staticmethod(np.triu)


def _triangle(cls, name, x, k):
    xv = np.asarray(value(x))
    if xv.ndim < 2:
        raise ValueError(f"{name}: expected an input of rank >= 2 (the last two axes are the matrix), "
                         f"received shape {xv.shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"{name}: `k` must be an integer, received k={k!r}")
    return cls.apply(x, k=int(k))


def tril(x, k=0):
    """The lower triangle of the last two axes of ``x``: entries above diagonal ``k`` set to zero."""
    return _triangle(Tril, "tril", x, k)


def triu(x, k=0):
    """The upper triangle of the last two axes of ``x``: entries below diagonal ``k`` set to zero."""
    return _triangle(Triu, "triu", x, k)


__all__ = ["einsum", "tril", "triu"]
