"""Sequence utilities as in ``keras.utils``: ``pad_sequences`` and ``timeseries_dataset_from_array``
(which returns a ``PyDataset`` that ``fit`` / ``evaluate`` / ``predict`` take directly)."""
import numpy as np

from ..data.py_dataset import PyDataset


def _check_int(who, name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{who}: `{name}` must be an integer >= {minimum}{' or None' if allow_none else ''}, "
                         f"received {name}={value!r}")
    return int(value)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """A list of ``N`` sequences -> an array (N, maxlen) (+ the samples' own shape), padded with
    ``value`` and truncated to ``maxlen`` at the start ("pre") or the end ("post"), as Keras."""
    who = "pad_sequences"
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError(f"{who}: `sequences` must be a list of sequences, received {type(sequences).__name__}")
    for name, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ValueError(f"{who}: `{name}` must be 'pre' or 'post', received {name}={choice!r}")
    maxlen = _check_int(who, "maxlen", maxlen, 0, allow_none=True)
    lengths, sample_shape = [], ()
    for i, s in enumerate(sequences):
        if not hasattr(s, "__len__") or isinstance(s, (str, bytes)):
            raise ValueError(f"{who}: `sequences` must be a list of iterables, found a non-sequence {s!r} at "
                             f"index {i}")
        lengths.append(len(s))
        if len(s) and not sample_shape:
            sample_shape = np.asarray(s).shape[1:]
    dtype = np.dtype(dtype)
    if isinstance(value, str) and dtype != object and dtype.kind not in "US":
        raise ValueError(f"{who}: `dtype` {dtype} is not compatible with `value`'s type {type(value).__name__}; "
                         "pass dtype=object for variable-length strings")
    if maxlen is None:
        maxlen = max(lengths, default=0)
    out = np.full((len(lengths), maxlen) + tuple(sample_shape), value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(f"{who}: the shape of the sample at index {i} is {kept.shape[1:]}, different from the "
                             f"expected {tuple(sample_shape)}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out


class TimeseriesDataset(PyDataset):
    """Windows of ``data`` (and their targets), by batch: what ``timeseries_dataset_from_array``
    returns. ``start_positions`` are the windows' first rows (relative to ``start_index``)."""

    def __init__(self, data, targets, start_positions, offsets, batch_size, start_index):
        super().__init__()
        self.data, self.targets = data, targets
        self.start_positions, self.offsets = start_positions, offsets
        self.batch_size, self.start_index = batch_size, start_index

    def __len__(self):
        n = len(self.start_positions)
        return n if self.batch_size is None else -(-n // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"TimeseriesDataset: batch index {index} out of range [0, {len(self)})")
        if self.batch_size is None:
            starts = self.start_positions[index:index + 1]
        else:
            starts = self.start_positions[index * self.batch_size:(index + 1) * self.batch_size]
        rows = self.start_index + starts
        windows = self.data[rows[:, None] + self.offsets[None, :]]
        if self.batch_size is None:
            windows = windows[0]
        if self.targets is None:
            return windows
        targets = self.targets[rows]
        return windows, targets[0] if self.batch_size is None else targets


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Sliding windows over ``data`` (rows are timesteps): window ``i`` holds rows
    ``start_index + p_i + k * sampling_rate`` for k < ``sequence_length``, with ``p_i = i *
    sequence_stride``; its target is ``targets[start_index + p_i]``. Batches of ``batch_size``
    windows (None: single windows). ``shuffle`` permutes the windows with
    ``np.random.RandomState(seed)`` as Keras does (Keras's extra tf.data shuffle buffer is not
    reproduced, so shuffled orders differ from Keras's). Returns a PyDataset."""
    who = "timeseries_dataset_from_array"
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"{who}: `data` must be an array with a time axis, received a scalar")
    n = len(data)
    sequence_length = _check_int(who, "sequence_length", sequence_length, 1)
    sampling_rate = _check_int(who, "sampling_rate", sampling_rate, 1)
    sequence_stride = _check_int(who, "sequence_stride", sequence_stride, 1)
    batch_size = _check_int(who, "batch_size", batch_size, 1, allow_none=True)
    if sampling_rate >= n:
        raise ValueError(f"{who}: `sampling_rate` must be lower than the length of the data, received "
                         f"sampling_rate={sampling_rate} for data of length {n}")
    if sequence_stride >= n:
        raise ValueError(f"{who}: `sequence_stride` must be lower than the length of the data, received "
                         f"sequence_stride={sequence_stride} for data of length {n}")
    start_index = _check_int(who, "start_index", start_index, 0, allow_none=True) or 0
    if start_index >= n:
        raise ValueError(f"{who}: `start_index` must be lower than the length of the data, received "
                         f"start_index={start_index} for data of length {n}")
    end_index = _check_int(who, "end_index", end_index, 1, allow_none=True)
    if end_index is None:
        end_index = n
    elif end_index <= start_index or end_index > n:
        raise ValueError(f"{who}: `end_index` must be in ({start_index}, {n}] (after start_index, at most the "
                         f"length of the data), received end_index={end_index}")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError(f"{who}: `targets` must be an array with one entry per timestep, received a scalar")
    if seed is not None:
        seed = _check_int(who, "seed", seed, 0)
    num_windows = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_windows = min(num_windows, len(targets) - start_index)
    start_positions = np.arange(0, max(num_windows, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        np.random.RandomState(np.random.randint(1e6) if seed is None else seed).shuffle(start_positions)
    offsets = np.arange(sequence_length, dtype=np.int64) * sampling_rate
    return TimeseriesDataset(data, targets, start_positions, offsets, batch_size, start_index)
