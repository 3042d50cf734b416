"""ONNX import handlers that move data without computing (``dlcore.saving.onnx_import``): Reshape
that merges the batch axis with others and splits it back, Slice and Gather of computed tensors.

PyTorch's attention merges the batch and heads axes (``q.view(T, batch * heads, head_dim)``) and
later splits them back. A value whose ONNX axis holds the batch together with other axes is a
``_Merged``: its KerasTensor keeps the batch as axis 0 and every factor as an axis of its own,
and ``groups[j]`` lists the held axes ONNX axis j merges, outermost first. Shape arithmetic
carries the batch size as ``BATCH`` (``Shape`` yields it, ``Mul`` by the heads gives
``heads * BATCH``), so a Reshape knows which target axis holds the batch and how many axes it
merges on either side of it: the reshape is then one Permute and one Reshape of the per-sample
axes, batch size symbolic.
"""
import math

import numpy as np

from .onnx_import import BATCH, _Merged, _Sym, _unsupported


def is_batch(d):
    """Whether shape entry ``d`` is the batch size times a whole factor."""
    return d > 0 and d % BATCH == 0


def groups_of(v):
    """The held axes each ONNX axis of ``v`` holds."""
    if isinstance(v, _Merged):
        return [tuple(g) for g in v.groups]
    return [(v.perm.index(j),) for j in range(v.rank)]


def from_groups(t, groups):
    """A _Sym when every ONNX axis holds one axis of ``t``, else a _Merged."""
    if all(len(g) == 1 for g in groups):
        perm = [0] * len(groups)
        for j, (h,) in enumerate(groups):
            perm[h] = j
        return _Sym(t, perm)
    return _Merged(t, groups)


def onnx_shape(v):
    """``v``'s ONNX shape with the batch-holding entry as a multiple of ``BATCH`` (unknown sizes 0)."""
    sizes = list(v.t.shape)
    out = []
    for g in groups_of(v):
        known = [sizes[h] for h in g if h != 0]
        size = 0 if None in known else math.prod(known)
        out.append(size * BATCH if 0 in g else size)
    return out


def transpose(v, p):
    """``v`` with its ONNX axes permuted by ``p`` (nothing moves)."""
    groups = groups_of(v)
    return from_groups(v.t, [groups[a] for a in p])


def reshape(b, node, v, shape, allowzero=False):
    """``v`` reshaped to the ONNX ``shape``, whose batch entry may merge other axes; the batch is
    never split (refused with the reason otherwise)."""
    groups, sizes = groups_of(v), list(v.t.shape)
    if None in sizes[1:]:
        raise _unsupported(node, f"shape {shape} on a tensor of held shape {tuple(sizes)} with unknown sizes")
    atoms = [h for g in groups for h in g]
    p = atoms.index(0)
    before, after = math.prod(sizes[h] for h in atoms[:p]), math.prod(sizes[h] for h in atoms[p + 1:])
    current = onnx_shape(v)
    dims = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(current):
                raise _unsupported(node, f"shape {shape}: entry {i} copies an axis the input lacks")
            d = current[i]
        dims.append(int(d))
    batch_at = [i for i, d in enumerate(dims) if is_batch(d)]
    free = [i for i, d in enumerate(dims) if d == -1]
    if len(batch_at) > 1 or len(free) > 1 or any(d < -1 for d in dims) or (not batch_at and not free):
        raise _unsupported(node, f"shape {shape}: exactly one entry must hold the batch axis (from Shape, or -1)")
    known = math.prod(d for i, d in enumerate(dims) if i not in batch_at + free)
    if batch_at:
        j, k = batch_at[0], dims[batch_at[0]] // BATCH
        if free:
            if known * k == 0 or (before * after) % (known * k):
                raise _unsupported(node, f"shape {shape} does not divide the input's {before * after} values per sample")
            dims[free[0]] = (before * after) // (known * k)
    else:
        j = free[0]
        if known == 0 or (before * after) % known:
            raise _unsupported(node, f"shape {shape} does not divide the input's {before * after} values per sample")
        k = (before * after) // known
    dims[j] = k
    lead = math.prod(dims[:j])
    if lead == 0 or before % lead or k % (before // lead) or (k // (before // lead)) * math.prod(dims[j + 1:]) != after:
        raise _unsupported(node, f"shape {shape} on a tensor of ONNX shape {current} ({BATCH} = the batch) would "
                                 "split the batch axis")
    left, right = before // lead, k // (before // lead)
    order = atoms[:p] + atoms[p + 1:]
    x = v.t if order == list(range(1, len(sizes))) else b.L.Permute(tuple(order))(v.t)
    sample = dims[:j] + [n for n in (left, right) if n > 1] + dims[j + 1:]
    if list(x.shape[1:]) != sample:
        x = b.L.Reshape(tuple(sample))(x)
    held = iter(range(1, len(sample) + 1))
    out = [(next(held),) for _ in dims[:j]]
    out.append(tuple(([next(held)] if left > 1 else []) + [0] + ([next(held)] if right > 1 else [])))
    out += [(next(held),) for _ in dims[j + 1:]]
    return from_groups(x, out)


# ---- Slice and Gather of computed tensors ------------------------------------------------------------
_CLAMP = 2 ** 40  # beyond any axis length: the same slice, and a small number in the layer's config


def slice_tensor(b, node, v):
    """ONNX Slice (starts, ends, axes, steps constant) of the computed ``v``: a Slice layer on the
    held axes; the batch axis only as a whole."""
    args = [b.values.get(n) if n else None for n in node.input]
    for name, value in zip(node.input[1:], args[1:]):
        if name and not isinstance(value, np.ndarray):
            raise _unsupported(node, f"input {name!r} computed from the model's inputs (starts, ends, axes and "
                                     "steps must be constants)")
    starts, ends = [int(s) for s in args[1].reshape(-1)], [int(e) for e in args[2].reshape(-1)]
    axes = [int(a) % v.rank for a in args[3].reshape(-1)] if len(args) > 3 and args[3] is not None \
        else list(range(len(starts)))
    steps = [int(s) for s in args[4].reshape(-1)] if len(args) > 4 and args[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        raise _unsupported(node, f"starts {starts}, ends {ends}, axes {axes} and steps {steps} do not pair up")
    held_axes, held_starts, held_ends, held_steps = [], [], [], []
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise _unsupported(node, "a step of 0")
        if a == v.perm[0]:
            if not (st == 1 and (s == 0 or s <= -BATCH) and (e >= BATCH or is_batch(e))):
                raise _unsupported(node, f"slicing the batch axis (start {s}, end {e}, step {st}); only all of it")
            continue
        held_axes.append(v.perm.index(a))
        held_starts.append(max(min(s, _CLAMP), -_CLAMP))
        held_ends.append(max(min(e, _CLAMP), -_CLAMP))
        held_steps.append(st)
    if not held_axes:
        b.set(node, v)
        return
    layer = b.L.Slice(axes=held_axes, starts=held_starts, ends=held_ends, steps=held_steps)
    b.set(node, _Sym(layer(v.t), v.perm))


def gather_tensor(b, node, data, index, axis):
    """ONNX Gather of the computed ``data`` at the constant ``index`` along ONNX ``axis`` (not the
    batch): a Gather layer on the held axis; the index's axes take the gathered axis's place."""
    if axis == data.perm[0]:
        raise _unsupported(node, "Gather along the batch axis (a sample of the batch; an imported model keeps "
                                 "its batch axis)")
    h, q = data.perm.index(axis), index.ndim
    out = b.L.Gather(indices=index.astype(np.int64).tolist(), axis=h)(data.t)
    shift = lambda a: a + q - 1 if a > axis else a  # noqa: E731 (ONNX axes after the gathered one)
    perm = [shift(a) for a in data.perm[:h]] + [axis + i for i in range(q)] + [shift(a) for a in data.perm[h + 1:]]
    b.set(node, _Sym(out, perm))


def gather_constant(b, node, data, v, axis):
    """ONNX Gather of the constant ``data`` at indices computed from the inputs (an embedding
    lookup): an Embedding layer over ``data``'s first axis, reshaped to its other axes."""
    if axis % data.ndim != 0 or data.ndim < 1:
        raise _unsupported(node, f"Gather of a constant along axis {axis} at computed indices (the indices' batch "
                                 "axis would not lead the output; axis 0, an embedding lookup, is imported)")
    if np.dtype(v.t.dtype).kind not in "iu":
        raise _unsupported(node, f"indices of type {v.t.dtype}")
    rest = data.shape[1:]
    sample = [-1 if d is None else d for d in v.t.shape[1:]]
    if sample.count(-1) > 1 or not (sample or rest):
        raise _unsupported(node, f"Gather of a {data.ndim}-D constant at indices of shape {tuple(v.t.shape)}")
    table = data.reshape(data.shape[0], -1).astype(np.float32)
    layer = b.L.Embedding(table.shape[0], table.shape[1])
    y = layer(v.t)
    layer.set_weights([table])
    if rest != (table.shape[1],):
        y = b.L.Reshape(tuple(sample) + tuple(rest))(y)
    b.set(node, _Sym(y, list(v.perm) + [v.rank + i for i in range(len(rest))]))
