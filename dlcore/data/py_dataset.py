"""PyDataset (Keras 3's ``keras.utils.PyDataset``, alias ``Sequence``): batches by index.

A subclass implements ``__getitem__(index)`` returning one batch (``x``, ``(x,)``, ``(x, y)`` or
``(x, y, sample_weight)``) and ``__len__`` (or the ``num_batches`` property; None means endless),
and may implement ``on_epoch_begin`` / ``on_epoch_end``. ``workers`` > 1 fetches batches in that
many threads; ``use_multiprocessing=True`` in a process pool; ``max_queue_size`` bounds how many
batches are fetched ahead. Imports nothing of dlcore.
"""
import itertools


class PyDataset:
    """Base class for a dataset of batches read by index (see the module docstring)."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size
        self._check_settings()

    def _check_settings(self):
        name = type(self).__name__
        for arg, value in (("workers", self.workers), ("max_queue_size", self.max_queue_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: `{arg}` must be a positive integer, received {value!r}")
        if not isinstance(self.use_multiprocessing, bool):
            raise TypeError(f"{name}: `use_multiprocessing` must be a bool, received {self.use_multiprocessing!r}")

    # Subclasses that forget super().__init__() still work, with Keras's defaults.
    @property
    def workers(self):
        return self.__dict__.get("_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return self.__dict__.get("_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return self.__dict__.get("_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} must implement __getitem__(index), returning one batch")

    @property
    def num_batches(self):
        """The number of batches, or None for an endless dataset (``__len__`` if defined)."""
        if hasattr(self, "__len__"):
            return len(self)
        return None

    def __iter__(self):
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch (for example to reshuffle the samples)."""


Sequence = PyDataset  # Keras 3 keeps keras.utils.Sequence as an alias of PyDataset
