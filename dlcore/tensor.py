"""Tensor (an array plus the op that made it) and Variable (a named, mutable, trainable array)."""
import numpy as np

from . import devices as _devices


class Tensor:
    """An immutable NumPy array with its place in the recorded graph.

    ``value``: the ndarray; ``node``: the autograd Node that produced it (None for constants and
    variables); ``index``: which output of that node it is; ``mask``: Keras's per-timestep mask
    (a boolean ndarray of the leading dimensions) when a masking layer produced one, else None.
    """

    __slots__ = ("value", "node", "index", "mask", "__weakref__")
    __array_priority__ = 100  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, value, node=None, index=0):
        # a GPU tensor holds a numba device array (devices.ARRAY_TYPES is empty until a GPU is chosen)
        if type(value) is not np.ndarray and not isinstance(value, (np.ndarray, *_devices.ARRAY_TYPES)):
            value = np.asarray(value)
        self.value = value
        self.node = node
        self.index = index
        self.mask = None

    # array protocol ---------------------------------------------------------------------
    @property
    def shape(self):
        shape = self.value.shape
        return shape if type(shape) is tuple else tuple(shape)  # numba's simulated shapes refuse [-1]

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    @property
    def size(self):
        return self.value.size

    def numpy(self):
        return _devices.to_host(self.value)

    def __array__(self, dtype=None, copy=None):
        value = _devices.to_host(self.value)
        if dtype is not None and dtype != value.dtype:
            return value.astype(dtype)
        return value

    def __len__(self):
        if self.value.ndim == 0:
            raise TypeError("len() of a 0-d Tensor")
        return self.value.shape[0]

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __bool__(self):
        return bool(self.value)

    def __repr__(self):
        return f"<Tensor shape={self.value.shape} dtype={self.value.dtype}>\n{self.value!r}"

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # operators (differentiable, through dlcore.ops) -----------------------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().subtract(self, other)

    def __rsub__(self, other):
        return _ops().subtract(other, self)

    def __mul__(self, other):
        return _ops().multiply(self, other)

    def __rmul__(self, other):
        return _ops().multiply(other, self)

    def __truediv__(self, other):
        return _ops().divide(self, other)

    def __rtruediv__(self, other):
        return _ops().divide(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)

    def __rpow__(self, other):
        return _ops().power(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __getitem__(self, key):
        return _ops().getitem(self, key)

    # comparisons and logic return boolean Tensors (not differentiable), as Keras and TF eager
    # tensors do; hashing stays by identity, so Tensors remain usable as dict keys and in sets
    # (autograd keys nodes by id()), while ``t in list`` compares elementwise as arrays do.
    def __eq__(self, other):
        return False if other is None else _ops().equal(self, other)

    def __ne__(self, other):
        return True if other is None else _ops().not_equal(self, other)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    __hash__ = object.__hash__

    def __floordiv__(self, other):
        return _ops().floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops().floor_divide(other, self)

    def __mod__(self, other):
        return _ops().mod(self, other)

    def __rmod__(self, other):
        return _ops().mod(other, self)

    def __and__(self, other):
        return _logic("and", self, other)

    def __rand__(self, other):
        return _logic("and", other, self)

    def __or__(self, other):
        return _logic("or", self, other)

    def __ror__(self, other):
        return _logic("or", other, self)

    def __xor__(self, other):
        return _logic("xor", self, other)

    def __rxor__(self, other):
        return _logic("xor", other, self)

    def __invert__(self):
        return _logic("invert", self)

    @property
    def T(self):
        return _ops().transpose(self)

    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def astype(self, dtype):
        return _ops().cast(self, dtype)


class Variable(Tensor):
    """A named array that layers own and optimizers update in place.

    ``trainable`` variables are watched by GradientTape automatically. ``value`` stays the same
    C-contiguous buffer for the variable's lifetime, so kernels can update it in place. Trainable
    float variables created inside ``dl.device("gpu:N")`` hold a numba device array; other state
    (metric accumulators, counters) stays on the host.
    """

    __slots__ = ("name", "trainable", "regularizer", "constraint", "path")
    epoch = 0  # counts the writes through assign* and optimizers: a captured inference call replays only
    # while it has not changed (models/inference.py)

    def __init__(self, initial_value, trainable=True, name=None, dtype=None, regularizer=None, constraint=None):
        value = np.array(_value(initial_value), dtype=dtype, copy=True, order="C")
        if value.dtype.kind not in "fiub":
            raise TypeError(f"Variable {name!r}: expected a numeric initial value, received dtype {value.dtype}")
        if trainable and value.dtype.kind == "f" and _devices.on_gpu():  # weights made in a GPU scope live there
            value = _devices.to_device(value)
        super().__init__(value)
        self.name = name or "variable"
        self.path = self.name
        self.trainable = bool(trainable)
        self.regularizer = regularizer
        self.constraint = constraint

    def assign(self, value):
        Variable.epoch += 1
        value = _value(value)
        if _devices.is_device_array(self.value) and _devices.is_device_array(value) and (
                value.dtype == self.value.dtype and tuple(value.shape) == tuple(self.value.shape)):
            self.value.copy_to_device(value)  # device to device: the data never visits the host
            return self
        value = np.asarray(_devices.to_host(value))
        if value.shape != self.value.shape:
            raise ValueError(f"Variable {self.path!r}: cannot assign a value of shape {value.shape} "
                             f"to a variable of shape {self.value.shape}")
        if _devices.is_device_array(self.value):
            self.value.copy_to_device(np.ascontiguousarray(value, dtype=self.value.dtype))
            return self
        np.copyto(self.value, value, casting="same_kind" if value.dtype.kind == "f" else "unsafe")
        return self

    def assign_add(self, delta):
        Variable.epoch += 1
        if _devices.is_device_array(self.value):
            return self.assign(self.numpy() + np.asarray(_devices.to_host(_value(delta)), dtype=self.dtype))
        self.value += np.asarray(_value(delta), dtype=self.value.dtype)
        return self

    def assign_sub(self, delta):
        Variable.epoch += 1
        if _devices.is_device_array(self.value):
            return self.assign(self.numpy() - np.asarray(_devices.to_host(_value(delta)), dtype=self.dtype))
        self.value -= np.asarray(_value(delta), dtype=self.value.dtype)
        return self

    def __repr__(self):
        return (f"<Variable path={self.path} shape={self.value.shape} dtype={self.value.dtype} "
                f"trainable={self.trainable}>\n{self.value!r}")


def _value(x):
    return x.value if isinstance(x, Tensor) else x


def _logic(kind, *xs):
    """``&``, ``|``, ``^``, ``~``: logical on booleans, bitwise on integers (as NumPy and TF)."""
    ops = _ops()
    if all(np.asarray(_value(x)).dtype == np.bool_ for x in xs):
        return getattr(ops, "logical_not" if kind == "invert" else "logical_" + kind)(*xs)
    return getattr(ops, "bitwise_" + kind)(*xs)


def _ops():
    from . import ops

    return ops
