"""Arrays as fit / evaluate / predict take them: NumPy arrays, lists/dicts of them (one per model
input or output), pandas objects, Tensors and scipy sparse matrices (densified one batch at a
time), checked once before anything trains: numeric, finite, one batch size, a batch axis."""
import numpy as np

from ..layers.layer import check_numeric
from ..symbolic import flatten
from ..tensor import Tensor


def is_sparse(a):
    """Whether ``a`` is a scipy sparse matrix or array (scipy is imported only if it is loaded)."""
    import sys

    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(a)


def check_batch_size(batch_size):
    if batch_size is None:
        return 32
    check_positive_int(batch_size, "batch_size")
    return int(batch_size)


def check_steps(value, name):
    if value is not None:
        check_positive_int(value, name)


def check_positive_int(value, name, allow_zero=False):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"`{name}` must be a {'non-negative' if allow_zero else 'positive'} integer, "
                         f"received {value!r}")


def to_array(a, what, strings=False):
    """``a`` as a checked numeric array (or a string array, with ``strings``: for a model whose
    input takes strings); a scipy sparse matrix stays sparse (CSR) until sliced."""
    if isinstance(a, Tensor):
        return a.value
    if is_sparse(a):
        if a.ndim != 2 or a.dtype.kind not in "biuf":
            raise TypeError(f"{what}: a sparse matrix must be 2-D and numeric, received a {a.ndim}-D "
                            f"{type(a).__name__} of dtype {a.dtype}")
        return a.tocsr()
    if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas DataFrame / Series
        a = a.to_numpy()
    try:
        arr = np.asarray(a)
    except ValueError as exc:
        raise ValueError(f"{what}: could not convert the data to an array: expected an array of numbers of one "
                         f"shape, received a {type(a).__name__} that does not convert to one ({exc})") from None
    if strings and (arr.dtype.kind in "US" or (arr.dtype == object and all(
            isinstance(v, (str, bytes)) for v in arr.reshape(-1)))):
        return arr
    if arr.dtype == object:  # name the first element that is not a number: the cause, not just the symptom
        odd = next((v for v in arr.reshape(-1) if not isinstance(v, (int, float, bool, np.number))), None)
        cause = "" if odd is None else f", holding a {type(odd).__name__} ({str(odd)[:60]!r})"
        received = "an array of Python objects" if isinstance(a, np.ndarray) else f"a value of type {type(a).__name__}"
        raise TypeError(f"{what}: expected numeric data (bool, int or float) in an array or a list of numbers, "
                        f"received {received}{cause}")
    check_numeric(arr, what)
    return arr


def map_data(fn, x):
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [fn(v) for v in x]
    return fn(x)


def prepare_inputs(x, where, model=None):
    """``x`` as arrays (one, or a list/dict of them), checked against ``model``'s input shapes
    before anything is copied or converted."""
    if type(x) is np.ndarray and x.ndim > 0 and x.dtype.kind in "biuf":
        if model is not None:
            model._check_data_shapes(x)
        return x  # what the checks below return for one numeric array with a batch axis
    if x is None:
        raise ValueError(f"{where}: received x=None; expected the input data (an array, or a list or "
                         "dict of arrays, one per model input)")
    if isinstance(x, (list, tuple, dict)) and not flatten(x):
        expected = "an array" if model is None else expected_inputs(model)
        raise ValueError(f"{where}: x is an empty {type(x).__name__}; expected {expected}")
    strings = model is not None and model._takes_strings()
    x = map_data(lambda a: to_array(a, f"{where} (x)", strings), x)
    for a in flatten(x):
        if a.ndim == 0:
            raise ValueError(f"{where}: x must have a batch dimension, received a scalar")
    if model is not None:
        model._check_data_shapes(x)
    same_length(x, None, where)
    return x


def numeric_arrays(x):
    """Whether ``x`` is a numeric ndarray with a batch axis, or a flat list or tuple of them."""
    if type(x) is np.ndarray:
        return x.ndim > 0 and x.dtype.kind in "biuf"
    return (type(x) is list or type(x) is tuple) and len(x) > 0 and all(
        type(a) is np.ndarray and a.ndim > 0 and a.dtype.kind in "biuf" for a in x)


def expected_inputs(model):
    """What ``model`` takes as ``x``, in words."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return "an array, or a list or dict with one array per model input"
    if len(inputs) == 1:
        return f"an array of shape {tuple(inputs[0].shape)}"
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
    return f"a list or dict of {len(inputs)} arrays (one per model input, of shapes {shapes})"


def prepare_data(x, y, sample_weight, where, model=None):
    """Arrays, checked: equal lengths, non-empty, finite floats, sample weights of shape (N,)."""
    x = prepare_inputs(x, where, model)
    if y is not None:
        if isinstance(y, (list, tuple, dict)) and not flatten(y):
            raise ValueError(f"{where}: y is an empty {type(y).__name__}; expected one target array per "
                             "model output")
        y = map_data(lambda a: to_array(a, f"{where} (y)"), y)
    n = same_length(x, y, where)
    if n == 0:
        raise ValueError(f"{where}: received empty data (0 samples)")
    for name, data in (("x", x), ("y", y)):
        if data is None:
            continue
        for a in flatten(data):
            a = a.data if is_sparse(a) else a
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = int(np.size(a) - np.isfinite(a).sum())
                raise ValueError(f"{where}: `{name}` contains {bad} NaN or infinite values; expected finite "
                                 "values: clean the data first")
    if sample_weight is not None:
        sample_weight = to_array(sample_weight, f"{where} (sample_weight)").astype(np.float32)
        if sample_weight.shape != (n,):
            raise ValueError(f"{where}: sample_weight must have shape ({n},), received {sample_weight.shape}")
        if not np.isfinite(sample_weight).all() or (sample_weight < 0).any():
            raise ValueError(f"{where}: sample_weight must be finite and non-negative")
    return x, y, sample_weight


def same_length(x, y, where):
    lengths = {}
    for name, data in (("x", x), ("y", y)):
        if data is None:
            continue
        for i, a in enumerate(flatten(data)):
            if a.ndim == 0:
                raise ValueError(f"{where}: `{name}` must be arrays with a batch dimension, received a scalar "
                                 f"leaf in {type(data).__name__} data (a list is read as one array per model "
                                 f"input or output; pass np.asarray(...) for a single array)")
            lengths[f"{name}[{i}]" if isinstance(data, (list, tuple, dict)) else name] = a.shape[0]
    sizes = set(lengths.values())
    if len(sizes) > 1:
        detail = ", ".join(f"{k} sizes: {v}" for k, v in lengths.items())
        raise ValueError(f"{where}: data cardinality is ambiguous: {detail}. Make sure all arrays contain the "
                         "same number of samples.")
    return sizes.pop() if sizes else 0


def num_samples(x):
    """The batch size of ``x`` (its first leaf's first dimension)."""
    return flatten(x)[0].shape[0]


def num_samples_any(x):
    return np.shape(flatten(x)[0])[0]


def slice_data(data, idx):
    """Rows ``idx`` of ``data`` (an array, or a list/dict of them); sparse rows come out dense."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _rows(v, idx) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_rows(v, idx) for v in data]
    return _rows(data, idx)


def _rows(a, idx):
    if type(a) is np.ndarray:
        return a[idx]
    return a[idx].toarray() if is_sparse(a) else a[idx]


def has_sparse(data):
    return data is not None and any(is_sparse(a) for a in flatten(data))


def apply_class_weight(y, class_weight, sample_weight):
    """Per-sample weights from ``class_weight`` (class id -> weight), times ``sample_weight``."""
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("fit: class_weight is only supported for models with a single output")
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
    weights = np.ones(len(labels), dtype=np.float32)
    for cls, w in class_weight.items():
        weights[labels == int(cls)] = float(w)
    return weights if sample_weight is None else weights * sample_weight
