"""The strategy protocol and the default 1-replica strategy (Keras 3's distribution scope, as TF's
``tf.distribute.get_strategy()``).

A strategy answers: how many replicas train in sync, which one this process is, which rows of a
global batch are this replica's, and how values are combined across replicas. The default
strategy is one replica: every method is the identity, so the training loop calls them
unconditionally. ``MPIStrategy`` (``mpi.py``) is the multi-process one.

Design: the active strategy is a process-wide stack pushed by ``scope()``; ``compile`` and
optimizers created inside a scope remember it, so ``fit`` and ``apply_gradients`` later find it
without the scope being open (as Keras 3's distribution).
"""
import contextlib

import numpy as np

from ..tensor import Tensor

_stack = []
_world = [None]  # the MPIStrategy of this process, once one exists (rank-0 I/O asks it)

SUM, MEAN = "SUM", "MEAN"


class ReduceOp:
    """``tf.distribute.ReduceOp`` spelling: ``ReduceOp.SUM`` / ``ReduceOp.MEAN`` (strings work too)."""
    SUM = SUM
    MEAN = MEAN


def _reduce_op(op):
    name = getattr(op, "name", op)
    if isinstance(name, str) and name.upper() in (SUM, MEAN):
        return name.upper()
    raise ValueError(f"reduce: op must be 'SUM' or 'MEAN' (or ReduceOp.SUM / ReduceOp.MEAN); received {op!r}")


def _as_array(value, where):
    if isinstance(value, Tensor):
        value = value.value
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{where}: expected a number, a numeric array or a Tensor; received {type(value).__name__}")
    return arr


def shard_bounds(n, num_replicas, rank):
    """Rows ``[start, stop)`` of replica ``rank`` in a global batch of ``n`` rows: contiguous and
    as even as possible (the first ``n % num_replicas`` replicas hold one row more)."""
    base, extra = divmod(n, num_replicas)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Strategy:
    """One replica (the default, and the base of ``MPIStrategy``)."""

    num_replicas_in_sync = 1
    rank = 0
    _step_weight = None  # fit sets this replica's share of the global batch around each step

    @property
    def is_chief(self):
        """Whether this replica writes files (checkpoints, logs, the progress bar): rank 0."""
        return self.rank == 0

    @contextlib.contextmanager
    def scope(self):
        """Models compiled and optimizers created inside train with this strategy."""
        _stack.append(self)
        try:
            yield self
        finally:
            _stack.pop()

    # ---- data ----------------------------------------------------------------------------------
    def shard(self, batch, where="fit", allow_empty=False):
        """This replica's rows of a global batch (``x``, ``(x, y)`` or ``(x, y, sample_weight)``,
        nested lists/dicts of arrays) and the fraction of the global batch they hold. A global
        batch with fewer rows than replicas is refused (a replica would have nothing to train on),
        unless ``allow_empty`` (evaluation)."""
        from ..data.adapters import shard_batch

        return shard_batch(batch, self.num_replicas_in_sync, self.rank, where, allow_empty)

    def experimental_distribute_dataset(self, dataset):
        """An iterable over this replica's part of each global batch of ``dataset`` (any iterable
        of batches, e.g. a PyDataset or a generator of global batches)."""
        return _DistributedDataset(self, dataset)

    # ---- values across replicas ------------------------------------------------------------------
    def reduce(self, op, value, axis=None):
        """``value`` (this replica's) combined over replicas with ``op`` ('SUM' or 'MEAN'); ``axis``
        also reduces that axis of each replica's value first, as ``tf.distribute.Strategy.reduce``."""
        op = _reduce_op(op)
        arr = _as_array(value, "reduce")
        count = 1 if axis is None else arr.shape[axis]
        total = arr.astype(np.float64) if axis is None else arr.astype(np.float64).sum(axis=axis)
        total, count = self._sum(total), self._sum(np.float64(count))
        out = total if op == SUM else total / count
        return out.astype(arr.dtype) if np.issubdtype(arr.dtype, np.floating) else out

    def _sum(self, arr):
        """The element-wise sum over replicas of a float64 array (the same on every replica)."""
        return np.array(arr, dtype=np.float64)

    def all_reduce_gradients(self, grads, weight=None):
        """``sum_r weight_r * grads_r`` over replicas (``weight`` default ``1/num_replicas``: the mean)."""
        return list(grads)

    def broadcast_variables(self, variables, root=0):
        """Overwrite ``variables`` (Variables or arrays) with replica ``root``'s values."""

    def check_same_variables(self, variables, where):
        """Raise on every replica when the replicas' variables differ in number, shape or dtype."""

    def shared_generator(self, rng):
        """A generator seeded the same on every replica (rank 0 draws the seed from ``rng``), so
        the replicas shuffle the global batches alike."""
        return rng

    def check_same_values(self, variables, where):
        """Raise on every replica when the replicas' variables hold different values."""

    def barrier(self):
        """Wait until every replica reaches this point."""

    def global_logs(self, model, logs):
        """A step's logs over the whole global batch: the model's metrics on the summed states."""
        return logs

    def sync_moving_statistics(self, model):
        """Average BatchNormalization moving statistics over replicas, so weights stay identical."""


class _DistributedDataset:
    def __init__(self, strategy, dataset):
        if not hasattr(dataset, "__iter__"):
            raise TypeError("experimental_distribute_dataset: dataset must be an iterable of batches; received "
                            f"{type(dataset).__name__}")
        self.strategy, self.dataset = strategy, dataset

    def __iter__(self):
        for batch in self.dataset:
            yield self.strategy.shard(batch, "experimental_distribute_dataset")[0]

    def __len__(self):
        return len(self.dataset)


_default = Strategy()


def get_strategy():
    """The strategy of the innermost open ``scope()``, else the default 1-replica strategy."""
    return _stack[-1] if _stack else _default


def has_strategy():
    """Whether a ``scope()`` is open."""
    return bool(_stack)


def is_chief():
    """False only in a non-zero rank of a process that created an MPIStrategy: it must not write."""
    world = _world[0]
    return world is None or world.rank == 0


class DistributedOptimizer:
    """Horovod's spelling for custom loops: ``opt = DistributedOptimizer(opt, strategy)`` makes
    ``opt.apply_gradients`` average the gradients over replicas (an optimizer created inside
    ``strategy.scope()`` already does). Returns the optimizer itself, wired to the strategy."""

    def __new__(cls, optimizer, strategy=None):
        if not hasattr(optimizer, "apply_gradients"):
            raise TypeError(f"DistributedOptimizer: expected a dlcore optimizer; received {type(optimizer).__name__}")
        optimizer._distribute_strategy = strategy if strategy is not None else get_strategy()
        return optimizer
