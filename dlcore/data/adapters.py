"""Data adapters: what users pass to fit / evaluate / predict, as batches (Keras 3's data_adapters).

``get_adapter`` picks one: ``ArrayAdapter`` (arrays, lists/dicts of arrays, pandas, scipy sparse
densified per batch), ``GeneratorAdapter`` (a Python generator or any iterable of batches) or
``PyDatasetAdapter`` (``dl.utils.PyDataset``, fetched in threads or processes). Each yields, per
epoch, batches packed as Keras packs them: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``, which
is what ``train_step`` / ``test_step`` / ``predict_step`` receive.
"""
import inspect
import warnings

import numpy as np

from ..symbolic import flatten
from ..tensor import Tensor
from .arrays import apply_class_weight, is_sparse, map_data, num_samples, num_samples_any, slice_data, to_array
from .py_dataset import PyDataset


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """Keras's packing: ``x`` alone (a list or tuple x, one array per input, as ``(x,)``),
    ``(x, y)`` or ``(x, y, sample_weight)``."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
                     f"found a tuple of {len(data)} elements")


def shard_batch(batch, num_replicas, rank, where="fit", allow_empty=False):
    """Replica ``rank``'s contiguous rows of a global batch (``x``, ``(x, y)`` or
    ``(x, y, sample_weight)``) and the fraction of the global rows they are (see
    ``dlcore.distribute``). A batch with fewer rows than replicas is refused, unless
    ``allow_empty`` (evaluation: the last replicas get no rows, fraction 0)."""
    if num_replicas == 1:
        return batch, 1.0
    from ..distribute.strategy import shard_bounds

    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    n = num_samples_any(x)
    if n < num_replicas and not allow_empty:
        raise ValueError(f"{where}: a global batch of {n} samples cannot be split over {num_replicas} replicas "
                         f"(each needs at least one); use a batch size and sample count whose last batch holds "
                         f"at least {num_replicas} samples")
    rows = slice(*shard_bounds(n, num_replicas, rank))
    part = pack_x_y_sample_weight(slice_data(x, rows), slice_data(y, rows),
                                  None if sample_weight is None else slice_data(sample_weight, rows))
    return part, (rows.stop - rows.start) / n


def is_batch_source(x):
    """Whether ``x`` is a PyDataset or an iterable of batches (not arrays or a list/dict of them)."""
    if isinstance(x, PyDataset) or inspect.isgenerator(x):
        return True
    if x is None or isinstance(x, (np.ndarray, Tensor, list, tuple, dict, str, bytes)) or is_sparse(x):
        return False
    if hasattr(x, "to_numpy") or hasattr(x, "__array__"):  # pandas, array-likes
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def get_adapter(x, y=None, sample_weight=None, steps=None, shuffle=False, class_weight=None, where="fit"):
    """The adapter for a batch source ``x`` (see ``is_batch_source``); ``y`` and
    ``sample_weight`` must be None, as the batches carry them."""
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"{where}: `{name}` must be None when x is a {type(x).__name__} (a generator or "
                             f"PyDataset yields its own targets and weights); received {name} of type "
                             f"{type(value).__name__}")
    if isinstance(x, PyDataset):
        return PyDatasetAdapter(x, steps=steps, shuffle=shuffle, class_weight=class_weight, where=where)
    return GeneratorAdapter(x, steps=steps, class_weight=class_weight, where=where)


class ArrayAdapter:
    """Batches of checked arrays: shuffled each epoch (fit) or in order (evaluate, predict)."""

    def __init__(self, x, y, sample_weight, batch_size, steps=None, shuffle=False, rng=None, wrap=True):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size
        self.n = num_samples(x)
        full = -(-self.n // batch_size)
        # fit's steps_per_epoch may run past the data (it wraps around); evaluate's steps may not
        self.num_batches = full if steps is None else (int(steps) if wrap else min(int(steps), full))
        self.shuffle, self.rng = shuffle, rng
        self.exhausted = False

    def __iter__(self):
        n, bs = self.n, self.batch_size
        order = self.rng.permutation(n) if self.shuffle else None
        for step in range(self.num_batches):
            start = (step * bs) % n
            idx = order[start:start + bs] if order is not None else slice(start, min(n, start + bs))
            yield pack_x_y_sample_weight(slice_data(self.x, idx), slice_data(self.y, idx),
                                         None if self.sample_weight is None else self.sample_weight[idx])

    def on_epoch_end(self):
        pass


class _BatchStream:
    """Checks what a generator or PyDataset yields: a batch structure, numeric leaves, one batch
    size per batch, and the same structure and per-sample shapes as the first batch."""

    def __init__(self, source, steps, class_weight, where):
        self.source = source
        self.steps = None if steps is None else int(steps)
        self.class_weight = class_weight
        self.where = where
        self.exhausted = False  # set when the data ran out before the steps asked for
        self._signature = None
        self._count = 0

    def _what(self):
        return f"the {type(self.source).__name__}"

    def _standardize(self, batch):
        self._count += 1
        if isinstance(batch, list):
            batch = tuple(batch)
        if isinstance(batch, tuple) and not 1 <= len(batch) <= 3:
            raise ValueError(f"{self.where}: {self._what()} yielded a tuple of {len(batch)} elements; expected "
                             "a batch `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`")
        parts = batch if isinstance(batch, tuple) else (batch,)
        names = ("x", "y", "sample_weight")
        parts = tuple(None if p is None else map_data(
            lambda a, n=names[i]: self._leaf(a, n), p) for i, p in enumerate(parts))
        sizes = {np.shape(a)[0] for p in parts if p is not None for a in flatten(p)}
        if len(sizes) > 1:
            raise ValueError(f"{self.where}: batch {self._count} of {self._what()} mixes batch sizes "
                             f"{sorted(sizes)}; x, y and sample_weight of one batch must hold the same samples")
        signature = tuple(None if p is None else tuple(np.shape(a)[1:] for a in flatten(p)) for p in parts)
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(f"{self.where}: batch {self._count} of {self._what()} has per-sample shapes "
                             f"{_describe(signature)} but its first batch had {_describe(self._signature)}; "
                             "every batch must have the same structure and per-sample shapes")
        if self.class_weight is not None:
            if len(parts) == 3:
                raise ValueError(f"{self.where}: you cannot pass `class_weight` and batches carrying "
                                 "sample weights at the same time")
            if len(parts) == 2:
                parts = parts + (apply_class_weight(parts[1], self.class_weight, None),)
        if isinstance(batch, tuple):
            return parts
        return parts[0]

    def _leaf(self, a, name):
        if type(a) is np.ndarray and a.ndim > 0 and a.dtype.kind in "biuf":
            return a  # what the checks below return for a numeric array with a batch axis
        a = to_array(a, f"{self.where} (batch {self._count} of {self._what()}, {name})")
        if is_sparse(a):
            a = a.toarray()
        if a.ndim == 0:
            raise ValueError(f"{self.where}: batch {self._count} of {self._what()} has a scalar {name}; "
                             "expected arrays with a batch dimension")
        return a

    def _ran_out(self, taken):
        self.exhausted = True
        warnings.warn(f"{self.where}: your input ran out of data after {taken} batches; interrupting. Make sure "
                      f"{self._what()} can generate at least `steps * epochs` batches.", stacklevel=3)


def _describe(signature):
    names = ("x", "y", "sample_weight")
    return ", ".join(f"{names[i]} {list(s)}" for i, s in enumerate(signature) if s is not None)


class GeneratorAdapter(_BatchStream):
    """A Python generator (consumed across epochs) or a re-iterable of batches (a fresh pass per
    epoch when it ran out)."""

    def __init__(self, source, steps=None, class_weight=None, where="fit"):
        super().__init__(source, steps, class_weight, where)
        self.num_batches = self.steps
        self._iterator = None

    def __iter__(self):
        if self._iterator is None or (self._iterator is False and not hasattr(self.source, "__next__")):
            self._iterator = iter(self.source)
        if self._iterator is False:
            self._ran_out(0)
            return
        taken = 0
        while self.steps is None or taken < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = False
                if self.steps is not None or taken == 0:
                    self._ran_out(taken)
                return
            taken += 1
            yield self._standardize(batch)

    def on_epoch_end(self):
        pass


_worker_dataset = None


def _set_worker_dataset(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _worker_getitem(index):
    return _worker_dataset[index]


class PyDatasetAdapter(_BatchStream):
    """A PyDataset: batches by index (shuffled batch order when ``shuffle``), fetched in
    ``workers`` threads or, with ``use_multiprocessing``, processes, at most ``max_queue_size`` ahead."""

    def __init__(self, dataset, steps=None, shuffle=False, class_weight=None, where="fit"):
        super().__init__(dataset, steps, class_weight, where)
        dataset._check_settings()
        length = dataset.num_batches
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 0):
            raise ValueError(f"{where}: {self._what()}'s __len__ / num_batches must be a non-negative integer, "
                             f"received {length!r}")
        if length is None and self.steps is None:
            raise ValueError(f"{where}: {self._what()} has no __len__ (it is endless): pass steps_per_epoch "
                             "(fit) or steps (evaluate, predict) to say how many batches make an epoch")
        self.length = length
        self.num_batches = self.steps if length is None else min(length, self.steps or length)
        self.shuffle = shuffle

    def _indices(self):
        if self.length is None:
            return range(self.steps)
        if self.shuffle:
            from ..utils.random import generator

            return generator().permutation(self.length)[:self.num_batches]
        return range(self.num_batches)

    def _get(self, fetch, index):
        try:
            return fetch(index)
        except IndexError as exc:
            if self.length is None:
                raise
            raise ValueError(f"{self.where}: {self._what()}.__len__ returns {self.length} but __getitem__("
                             f"{index}) raised IndexError ({exc}); __len__ must be the number of batches") from exc

    def __iter__(self):
        dataset = self.source
        dataset.on_epoch_begin()
        indices = [int(i) for i in self._indices()]
        if dataset.workers <= 1 and not dataset.use_multiprocessing:
            for i in indices:
                yield self._standardize(self._get(dataset.__getitem__, i))
        else:
            yield from self._from_pool(dataset, indices)
        if self.steps is not None and self.length is not None and self.steps > self.length:
            self._ran_out(self.length)

    def _from_pool(self, dataset, indices):
        import concurrent.futures  # with the workers: a predict of arrays imports neither
        import multiprocessing

        if dataset.use_multiprocessing:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            pool = concurrent.futures.ProcessPoolExecutor(dataset.workers, mp_context=context,
                                                          initializer=_set_worker_dataset, initargs=(dataset,))
            fetch = _worker_getitem
        else:
            pool = concurrent.futures.ThreadPoolExecutor(dataset.workers)
            fetch = dataset.__getitem__
        ahead = max(dataset.max_queue_size, dataset.workers)
        try:
            pending = [pool.submit(fetch, i) for i in indices[:ahead]]
            for k, index in enumerate(indices):
                batch = self._get(lambda _: pending[k].result(), index)
                if k + ahead < len(indices):
                    pending.append(pool.submit(fetch, indices[k + ahead]))
                pending[k] = None
                yield self._standardize(batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def on_epoch_end(self):
        self.source.on_epoch_end()
