"""MPIStrategy: synchronous data-parallel training over MPI processes (``mpiexec -n 4 python train.py``).

Each process (rank) reads the full data; ``fit`` gives each rank its contiguous part of every
global batch, the ranks' gradients are summed with weights ``n_rank / n_global`` (so the step
equals one step on the global batch for the mean losses), rank 0's weights are broadcast before
the first step, metrics are summed over ranks, and only rank 0 writes files. ``evaluate`` (and
fit's validation) shard every batch the same way and sum the metrics' states once at the end;
``predict`` is replicated. A ``BatchNormalization(synchronized=True)`` all-reduces its batch
statistics (forward) and its gradient sums (backward) through ``_sum``.

Design:
- Gradients are packed into contiguous buckets (per dtype, at most ``bucket_bytes`` each) and
  reduced with nonblocking ``Iallreduce``, all started before any is waited on, so packing bucket
  k+1 overlaps the reduction of bucket k. dlcore's tape returns every gradient at once (no
  per-parameter backward hook), so the reduction starts after the backward pass, not during it
  as in PyTorch DDP; for the small models this engine trains on CPUs that costs little.
- Reduction order: ``reduction="allreduce"`` (default) uses MPI_SUM. MPICH's algorithms for a
  fixed communicator size and message size are deterministic run to run, and every algorithm it
  uses leaves the same bits on every rank (pairwise sums are commutative in IEEE arithmetic); the
  tests check the weights bit for bit across ranks. ``reduction="ordered"`` allgathers the
  buckets and sums them in rank order on every rank: the same bits whatever MPI library runs it,
  at ``num_replicas`` times the traffic.
- Faults: an unhandled exception on one rank calls ``MPI_Abort`` (through ``sys.excepthook``), so
  the other ranks are killed instead of waiting in a collective forever; a watchdog thread aborts
  every rank when one collective waits longer than ``timeout`` seconds (a hung rank). A rank
  killed by a signal is handled by MPICH's launcher, which then kills the others.
"""
import hashlib
import os
import sys
import threading
import time

import numpy as np

from .strategy import Strategy, _world

_BN_STATISTICS = ("moving_mean", "moving_variance")
ABORT_GRACE_S = 0.5  # seconds between a rank's last message and MPI_Abort (see _abort)


def _values(variables):
    return [v.value if hasattr(v, "value") else v for v in variables]


def _abort(comm):
    """MPI_Abort after the rank's message has left: mpiexec forwards a rank's output through its
    proxy, and an abort straight after the write can end the proxy before it forwarded the line
    (seen on a loaded machine: the job died with no message at all)."""
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(ABORT_GRACE_S)
    comm.Abort(1)


class MPIStrategy(Strategy):
    """Data-parallel training over the processes of an MPI communicator (default
    ``MPI.COMM_WORLD``). Without mpiexec it is a 1-rank strategy that trains as usual.

    Args:
        communicator: an mpi4py communicator (default COMM_WORLD).
        reduction: 'allreduce' (MPI_SUM) or 'ordered' (allgather + rank-ordered sum).
        bucket_bytes: the most bytes of gradients reduced in one message.
        timeout: seconds a collective may wait before every rank is aborted (None: forever);
            default from ``DLCORE_MPI_TIMEOUT``, else 600.
    """

    def __init__(self, communicator=None, reduction="allreduce", bucket_bytes=25 * 2 ** 20, timeout="env"):
        try:
            from mpi4py import MPI
        except ImportError as e:  # the optional `mpi` extra
            raise ImportError("MPIStrategy needs mpi4py and an MPI library: pip install 'dlcore[mpi]' "
                              "(mpi4py and mpich)") from e
        if reduction not in ("allreduce", "ordered"):
            raise ValueError(f"MPIStrategy: reduction must be 'allreduce' or 'ordered'; received {reduction!r}")
        if not isinstance(bucket_bytes, (int, np.integer)) or isinstance(bucket_bytes, bool) or bucket_bytes < 1:
            raise ValueError(f"MPIStrategy: bucket_bytes must be a positive integer; received {bucket_bytes!r}")
        if timeout == "env":
            timeout = float(os.environ.get("DLCORE_MPI_TIMEOUT", 600))
        if timeout is not None and not timeout > 0:
            raise ValueError(f"MPIStrategy: timeout must be a positive number of seconds or None; received {timeout!r}")
        self._MPI = MPI
        self.comm = communicator if communicator is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.num_replicas_in_sync = self.comm.Get_size()
        self.reduction = reduction
        self.bucket_bytes = int(bucket_bytes)
        self.timeout = timeout
        self._layouts = {}
        self._busy = None  # (what, start time) while a collective waits
        self._watchdog = None
        _world[0] = self
        if self.num_replicas_in_sync > 1:
            _install_abort_on_exception(self.comm)

    def __repr__(self):
        return f"MPIStrategy(rank={self.rank}, num_replicas_in_sync={self.num_replicas_in_sync})"

    # ---- collectives under the watchdog ---------------------------------------------------------
    def _collective(self, what, fn, *args):
        if self.timeout is None or self.num_replicas_in_sync == 1:
            return fn(*args)
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="dlcore-mpi-watchdog", daemon=True)
            self._watchdog.start()
        self._busy = (what, time.monotonic())
        try:
            return fn(*args)
        finally:
            self._busy = None

    def _watch(self):
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            busy = self._busy
            if busy is not None and time.monotonic() - busy[1] > self.timeout:
                sys.stderr.write(f"dlcore MPIStrategy: rank {self.rank} waited more than {self.timeout:g} s in "
                                 f"{busy[0]} (another rank died or hangs); aborting all ranks\n")
                _abort(self.comm)

    def _sum(self, arr):
        arr = np.array(arr, dtype=np.float64)  # a copy, 0-d stays 0-d
        if self.num_replicas_in_sync == 1:
            return arr
        out = np.empty_like(arr)
        self._collective("allreduce", self.comm.Allreduce, arr.reshape(-1), out.reshape(-1), self._MPI.SUM)
        return out

    def shared_generator(self, rng):
        seed = int(rng.integers(2 ** 63)) if self.rank == 0 else None
        return np.random.default_rng(self._collective("broadcast", self.comm.bcast, seed, 0))

    def barrier(self):
        self._collective("barrier", self.comm.Barrier)

    # ---- gradients ------------------------------------------------------------------------------
    def _layout(self, grads):
        """Buckets for this list of gradients: ``[(dtype, [(index, offset, size)], total)]``."""
        key = tuple((g.shape, g.dtype.str) for g in grads)
        layout = self._layouts.get(key)
        if layout is None:
            layout, by_dtype = [], {}
            for i, g in enumerate(grads):
                by_dtype.setdefault(g.dtype.str, []).append(i)
            for dtype, indices in by_dtype.items():
                cap = max(1, self.bucket_bytes // np.dtype(dtype).itemsize)
                entries, offset = [], 0
                for i in indices:
                    if entries and offset + grads[i].size > cap:
                        layout.append((np.dtype(dtype), entries, offset))
                        entries, offset = [], 0
                    entries.append((i, offset, grads[i].size))
                    offset += grads[i].size
                layout.append((np.dtype(dtype), entries, offset))
            self._layouts[key] = layout
        return layout

    def all_reduce_gradients(self, grads, weight=None):
        """``sum_r weight_r * grads_r`` over ranks, bucketed (``weight`` default ``1/num_replicas``);
        returns new arrays, the same bits on every rank."""
        grads = [np.asarray(g.value if hasattr(g, "value") else g) for g in grads]
        if self.num_replicas_in_sync == 1:
            return grads
        w = 1.0 / self.num_replicas_in_sync if weight is None else float(weight)
        MPI, size = self._MPI, self.num_replicas_in_sync
        pending, out = [], [None] * len(grads)
        for dtype, entries, total in self._layout(grads):
            send = np.empty(total, dtype=dtype)
            for i, offset, n in entries:
                np.multiply(grads[i].reshape(-1), dtype.type(w), out=send[offset:offset + n])
            if self.reduction == "allreduce":
                pending.append((self.comm.Iallreduce(MPI.IN_PLACE, send, MPI.SUM), send, None, entries))
            else:
                gathered = np.empty((size, total), dtype=dtype)
                pending.append((self.comm.Iallgather(send, gathered), send, gathered, entries))
        self._collective("gradient all-reduce", MPI.Request.Waitall, [p[0] for p in pending])
        for _, send, gathered, entries in pending:
            if gathered is not None:  # the sum in rank order, the same on every rank
                send[...] = gathered[0]
                for r in range(1, size):
                    send += gathered[r]
            for i, offset, n in entries:
                out[i] = send[offset:offset + n].reshape(grads[i].shape)
        return out

    # ---- variables --------------------------------------------------------------------------------
    def check_same_variables(self, variables, where):
        if self.num_replicas_in_sync == 1:
            return
        sig = ";".join(f"{v.shape}:{v.dtype.str}" for v in _values(variables))
        digest = hashlib.sha1(sig.encode()).hexdigest()[:12]
        digests = self._collective("allgather", self.comm.allgather, (digest, len(variables)))
        if len(set(digests)) > 1:
            detail = ", ".join(f"rank {r}: {n} variables (shapes {d})" for r, (d, n) in enumerate(digests))
            raise ValueError(f"{where}: the ranks hold different models (the number, shapes or dtypes of their "
                             f"variables differ: {detail}); every rank must build the same model")

    def check_same_values(self, variables, where):
        """Raise on every rank when the ranks' variables hold different values (a custom loop that
        did not broadcast rank 0's initial weights)."""
        if self.num_replicas_in_sync == 1:
            return
        h = hashlib.sha1()
        for a in _values(variables):
            h.update(np.ascontiguousarray(a).tobytes())
        digests = self._collective("allgather", self.comm.allgather, h.hexdigest())
        if len(set(digests)) > 1:
            raise ValueError(f"{where}: the ranks start from different weights; call "
                             "strategy.broadcast_variables(model.weights) before the first step of a custom "
                             "loop (fit does it)")

    def broadcast_variables(self, variables, root=0):
        if self.num_replicas_in_sync == 1:
            return
        for arr in _values(variables):
            buf = np.ascontiguousarray(arr)
            self._collective("broadcast", self.comm.Bcast, buf, root)
            if buf is not arr:
                arr[...] = buf

    def sync_moving_statistics(self, model):
        if self.num_replicas_in_sync == 1:
            return
        # a synchronized BatchNormalization's statistics are already the same bits on every rank
        synced = {id(v) for layer in model._flatten_layers() if getattr(layer, "synchronized", False)
                  for v in layer.non_trainable_weights}
        stats = [v for v in model.non_trainable_weights
                 if getattr(v, "name", "").rsplit("/", 1)[-1].split(":")[0] in _BN_STATISTICS and id(v) not in synced]
        if stats:
            averaged = self.all_reduce_gradients(_values(stats))
            for v, a in zip(_values(stats), averaged):
                v[...] = a

    # ---- metrics ------------------------------------------------------------------------------------
    def global_logs(self, model, logs):
        if self.num_replicas_in_sync == 1:
            return logs
        states = [s for m in model.metrics for s in m.variables]
        local_names = set(model.get_metrics_result()) if states else set()
        if states and isinstance(logs, dict) and set(logs) == local_names:
            saved = [np.array(s.value) for s in states]
            summed = self._sum(np.concatenate([a.reshape(-1).astype(np.float64) for a in saved]))
            offset = 0
            for s, a in zip(states, saved):
                s.value[...] = summed[offset:offset + a.size].reshape(a.shape).astype(a.dtype)
                offset += a.size
            try:
                return model.get_metrics_result()
            finally:
                for s, a in zip(states, saved):
                    s.value[...] = a
        # a custom step's own logs: the mean over ranks of each scalar entry
        keys = sorted(k for k, v in logs.items() if np.ndim(v) == 0)
        means = self._sum(np.array([float(logs[k]) for k in keys])) / self.num_replicas_in_sync
        return {**logs, **{k: float(m) for k, m in zip(keys, means)}}


def _install_abort_on_exception(comm):
    """An unhandled exception on one rank aborts them all (as ``python -m mpi4py``), instead of
    leaving the others waiting in a collective."""
    previous = sys.excepthook
    if getattr(previous, "_dlcore_mpi_abort", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        _abort(comm)

    hook._dlcore_mpi_abort = True
    sys.excepthook = hook
