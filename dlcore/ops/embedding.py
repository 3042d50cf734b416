"""Embedding lookup: a gather forward, a deterministic scatter-add backward (kernels: embedding)."""
import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import contiguous, device_of, empty_on, value, zeros_state


_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


class EmbeddingLookup(Function):
    """y = table[ids]: a gather forward, a deterministic scatter-add backward. A table on the GPU
    gathers there (the host ids go in; the ids are kept on the host for the backward's sort)."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, table, ids):
        if type(ids) is np.ndarray and ids.dtype in _INDEX_DTYPES and ids.flags.c_contiguous:
            flat = ids.reshape(-1)  # the kernel reads int32 or int64 ids as they are
        else:
            flat = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        device = device_of(table)
        if device != "cpu":
            flat = flat.astype(np.int64, copy=False)
            y = empty_on(device, (flat.size, table.shape[1]), table.dtype)
            kernels.get("embedding_forward", device)(devices.to_device(flat), table, y)
            ctx.save(flat)
            ctx.table_shape, ctx.dtype, ctx.device = table.shape, table.dtype, device
            return y.reshape(tuple(ids.shape) + (table.shape[1],))
        y = np.empty((flat.size, table.shape[1]), dtype=table.dtype)
        kernels.get("embedding_forward")(flat, contiguous(table), y, kernels.threads_for(y.size))
        if ctx is not None:
            ctx.save(flat)
            ctx.table_shape, ctx.dtype, ctx.device = table.shape, table.dtype, "cpu"
        return y.reshape(ids.shape + (table.shape[1],))

    @staticmethod
    def backward(ctx, dy, needs):
        (flat,) = ctx.saved
        if not needs[0]:
            return None, None
        if ctx.device != "cpu":
            flat = flat.astype(np.int64, copy=False)
            dw = empty_on(ctx.device, ctx.table_shape, ctx.dtype)
            dw[:] = 0
            dy2 = devices.to_device(dy).reshape(flat.size, ctx.table_shape[1])
            kernels.get("embedding_backward", ctx.device)(flat, dy2, dw)
            return dw, None
        dw = zeros_state(ctx.table_shape, ctx.dtype)  # zeroed by a kernel: a captured step zeroes it again
        dy2 = contiguous(np.asarray(dy, dtype=ctx.dtype)).reshape(flat.size, ctx.table_shape[1])
        kernels.get("embedding_backward")(flat, dy2, dw)
        return dw, None


def checked_ids(ids, rows, who="embedding_lookup"):
    """``ids`` as an integer ndarray (integral float ids converted), every id in [0, ``rows``):
    the one check of the float and int8 lookups, its errors naming ``who``."""
    ids_v = np.asarray(value(ids))
    if ids_v.dtype.kind == "f":
        if ids_v.size and not np.all(np.isfinite(ids_v) & (np.mod(ids_v, 1) == 0)):
            raise ValueError(f"{who}: inputs must be integer token ids, received non-integer values "
                             f"(dtype {ids_v.dtype}, shape {ids_v.shape})")
        ids_v = ids_v.astype(np.int64)
    elif ids_v.dtype.kind not in "iub":
        raise TypeError(f"{who}: inputs must be integer token ids, received dtype {ids_v.dtype}")
    if ids_v.size:
        lo, hi = int(ids_v.min()), int(ids_v.max())
        if lo < 0 or hi >= rows:
            raise ValueError(f"{who}: token ids must be in [0, {rows}); received ids in [{lo}, {hi}] in "
                             f"inputs of shape {ids_v.shape}")
    return ids_v


def embedding_lookup(embeddings, ids, _who="embedding_lookup"):
    """``embeddings[ids]`` for integer ``ids`` of any shape (all in [0, rows): checked)."""
    table = value(embeddings)
    ids_v = checked_ids(ids, table.shape[0], _who)
    if type(table) is np.ndarray and not is_recording():
        return Tensor(EmbeddingLookup.forward(None, table, ids_v))  # nothing records: no graph node
    return EmbeddingLookup.apply(embeddings, ids_v)


__all__ = ["embedding_lookup"]
