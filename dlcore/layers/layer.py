"""The Layer base class: Keras 3's contract (``__init__`` / ``build`` / ``call`` / ``get_config``).

- ``__init__`` stores and validates configuration only;
- ``build(input_shape)`` creates named weights with ``add_weight`` in Keras layouts, on the first call;
- ``call(inputs, training=None)`` composes ``dlcore.ops``;
- ``get_config()`` returns the ``__init__`` arguments, so ``cls.from_config(config)`` rebuilds it.
"""
import contextvars
import inspect
import re
import threading

import numpy as np

from .. import config as dl_config
from .. import devices, mixed_precision, quantizers
from ..autograd import no_grad
from ..symbolic import CallNode, KerasTensor, flatten, is_symbolic, map_structure
from ..tensor import Tensor, Variable

# Set by dlcore.saving while it rebuilds a model from a file: add_weight then calls it as
# (layer, name, shape, dtype) instead of the initializer; it checks the shape against the file's
# weights and returns an array that the file's values will overwrite.
WEIGHT_FROM_FILE = contextvars.ContextVar("dlcore_weight_from_file", default=None)

_names = {}
_context = threading.local()


class predicting:
    """The context of ``predict``/``predict_on_batch``: there a custom layer's call may be captured
    and replayed as its kernel calls (models/replay.py), as Keras traces its predict function."""

    __slots__ = ("previous",)

    def __enter__(self):
        self.previous = getattr(_context, "predicting", False)
        _context.predicting = True

    def __exit__(self, *exc):
        _context.predicting = self.previous
_BUILD_LOCK = threading.RLock()  # held while a layer builds lazily, on its first call
_FLOAT_DTYPES = {"float32": np.dtype("float32"), "float64": np.dtype("float64")}


def unique_name(base):
    """``base``, then ``base_1``, ``base_2``... (reset by ``dl.utils.clear_session()``)."""
    count = _names.get(base, 0)
    _names[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def reset_names():
    _names.clear()


def snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()  # Keras: Conv2D -> conv2d


class StateUpdates:
    """Context in which layers' state updates (moving statistics, stateful RNN states) wait: they
    take effect, in order, when the outermost context exits normally, and are dropped when it
    raises, so a failed training step or call leaves the model as it was. Nested contexts join
    the outermost one."""

    __slots__ = ("owner",)

    def __enter__(self):
        self.owner = getattr(_context, "pending_updates", None) is None
        if self.owner:
            _context.pending_updates = []
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.owner:
            pending, _context.pending_updates = _context.pending_updates, None
            if exc_type is None:
                for update in pending:
                    update()
        return False


def defer_state_update(update):
    """Run ``update()`` now, or when the enclosing StateUpdates context completes."""
    pending = getattr(_context, "pending_updates", None)
    if pending is None:
        update()
    else:
        pending.append(update)


def current_training():
    """The ``training`` flag of the enclosing layer call (None outside any call)."""
    return getattr(_context, "training", None)


def check_numeric(a, where):
    """TypeError unless the array ``a`` holds numbers (bool, int or float): strings, Python
    objects, complex numbers and dates are refused before any layer reads them."""
    if a.dtype.kind not in "biuf":
        what = "an array of Python objects" if a.dtype == object else f"dtype {a.dtype}"
        raise TypeError(f"{where}: expected numeric data (bool, int or float), received {what}")


C_INT_MAX = 2 ** 31 - 1  # the largest size, stride or count the compiled kernels take (a C int)


def check_c_ints(owner, **arguments):
    """ValueError naming the argument when an integer of ``arguments`` (ints, or tuples of them,
    nested) is over C_INT_MAX, instead of an OverflowError from the kernel call."""
    for name, value in arguments.items():
        if any(v > C_INT_MAX for v in flatten(value)):
            raise ValueError(f"{owner}: `{name}` must be at most {C_INT_MAX} (2**31 - 1), the largest value the "
                             f"compiled kernels take, received {name}={value!r}")


def positive_int(owner, name, value, allow_none=False):
    """``value`` as an int (or None with ``allow_none``), else a ValueError naming ``owner`` and the
    argument ``name``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: invalid value for argument `{name}`: expected a strictly positive integer, "
                         f"received {name}={value!r}")
    return int(value)


class InputSpec:
    """What a layer accepts: ``ndim``, ``min_ndim``, ``max_ndim`` and ``axes`` {axis: size}."""

    def __init__(self, ndim=None, min_ndim=None, max_ndim=None, axes=None, dtype=None):
        self.ndim, self.min_ndim, self.max_ndim = ndim, min_ndim, max_ndim
        self.axes = axes or {}
        self.dtype = dtype


class Layer:
    """Base class of all layers (and of Model)."""

    _CALL_KWARGS = ("input_shape", "batch_input_shape", "batch_size", "input_dim")
    # ``call`` keyword arguments that join the positional inputs when given with one input (RNN's
    # initial_state), so that a functional graph records them as parents
    _INPUT_KWARGS = ()
    # whether the layer's ops run on GPU arrays: its float weights may then be made in dl.device("gpu")
    _runs_on_gpu = False

    def __init__(self, trainable=True, name=None, dtype=None, **kwargs):
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        batch_size = kwargs.pop("batch_size", None)
        input_dim = kwargs.pop("input_dim", None)
        # Keras's autocast: float inputs are cast to the compute dtype of a low-precision policy
        self._autocast = bool(kwargs.pop("autocast", True))
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments {sorted(kwargs)}")
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._input_shape_arg = tuple(batch_input_shape)
        elif input_shape is not None:
            self._input_shape_arg = (batch_size,) + tuple(input_shape)
        else:
            self._input_shape_arg = None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, received {name!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._set_dtype_policy(dtype)
        self._trainable = bool(trainable)
        self._trainable_variables = []
        self._non_trainable_variables = []
        self._layers = []
        self.built = False
        self.input_spec = None
        self.supports_masking = False
        self._inbound_nodes = []
        self._activity_losses = []
        self._call_has_training = "training" in inspect.signature(self.call).parameters
        self._call_has_mask = "mask" in inspect.signature(self.call).parameters
        self._makes_mask = type(self).compute_mask is not Layer.compute_mask

    # attribute tracking --------------------------------------------------------------------
    def __setattr__(self, name, value):
        if isinstance(value, Layer) and name != "_outer" and "_layers" in self.__dict__:
            if all(value is not layer for layer in self._layers):
                self._layers.append(value)
        elif isinstance(value, (list, tuple)) and "_layers" in self.__dict__ and not name.startswith("_"):
            for item in value:
                if isinstance(item, Layer) and all(item is not layer for layer in self._layers):
                    self._layers.append(item)
        object.__setattr__(self, name, value)

    # dtype policy (dlcore.mixed_precision) --------------------------------------------------------
    def _set_dtype_policy(self, dtype):
        """``dtype``: None (the global policy if one was set, else floatx), a policy name, a float
        dtype, a DTypePolicy or Keras's serialized policy. ``_dtype`` is the explicit policy name
        (None: floatx), ``_np_dtype`` the array dtype of variables and computation, ``_precision``
        the low precision ("float16" / "bfloat16") the layer rounds its inputs and outputs to."""
        policy = None
        if dtype is not None:
            try:
                policy = mixed_precision.get(dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{type(self).__name__}: invalid `dtype` {dtype!r:.200}. {exc}") from None
        elif mixed_precision.explicit_global_policy() is not None:
            policy = mixed_precision.explicit_global_policy()
        self._policy = policy
        self._dtype = None if policy is None else policy.name
        self._np_dtype = None if policy is None else policy.storage_dtype
        self._precision = None if policy is None else policy.low_precision

    @property
    def dtype_policy(self):
        """The layer's DTypePolicy (Keras 3): the int8 one once quantized, else its float policy."""
        return quantizers.DTypePolicy.of(self)

    @dtype_policy.setter
    def dtype_policy(self, value):
        self._set_dtype_policy(value)

    @property
    def dtype(self):
        """The variable dtype of the layer's policy (floatx unless given), as Keras."""
        return self._policy.variable_dtype if self._policy is not None else dl_config.floatx()

    @property
    def compute_dtype(self):
        return self._policy.compute_dtype if self._policy is not None else dl_config.floatx()

    @property
    def variable_dtype(self):
        return self.dtype

    def _float_dtype(self):
        """The np.dtype of the layer's float arrays: float inputs are cast to it and variables made
        in it (float32 under float16/bfloat16 policies; floatx unless given)."""
        return self._np_dtype or _FLOAT_DTYPES[dl_config._FLOATX]

    # weights ---------------------------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", name=None):
        """Create a named weight of ``shape`` (Keras 3 signature) and track it."""
        from .. import constraints, initializers, regularizers

        shape = () if shape is None else tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"Layer '{self.name}': weight {name!r} must have a non-negative shape, "
                             f"received {shape}")
        low = None
        if dtype in ("float16", "bfloat16") or dtype is None and self._precision and self._policy.variable_dtype in (
                "float16", "bfloat16"):
            low = dtype or self._policy.variable_dtype  # kept in float32 storage, rounded to its precision
            dtype = None
        dtype = np.dtype(dtype or self._float_dtype())
        if dtype.kind == "f" and devices.on_gpu() and not type(self)._runs_on_gpu:
            raise ValueError(f"{type(self).__name__} '{self.name}' has no GPU path yet (README, GPU, lists the "
                             f"layers that have one); build it outside dl.device({devices.current()!r})")
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        init = initializers.get(initializer)
        from_file = WEIGHT_FROM_FILE.get()
        value = init(shape, dtype=dtype.name) if from_file is None else from_file(self, name, shape, dtype)
        if low is not None and from_file is None:
            from ..ops.core import round_array

            value = round_array(np.asarray(value, dtype=np.float32), low)
        # A layer frozen before it was built (Dense(..., trainable=False)) makes frozen weights.
        variable = Variable(value, trainable=trainable and self._trainable, name=name or "variable", dtype=dtype,
                            regularizer=regularizers.get(regularizer), constraint=constraints.get(constraint))
        variable.path = f"{self.name}/{variable.name}"
        if dtype.kind == "f" and devices.on_gpu():  # frozen weights of a GPU layer live on the GPU too
            variable.value = devices.to_device(variable.value)
        (self._trainable_variables if trainable else self._non_trainable_variables).append(variable)
        return variable

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        value = bool(value)
        self._trainable = value
        for v in self._trainable_variables:
            v.trainable = value
        for layer in self._layers:
            layer.trainable = value

    @property
    def weights(self):
        """All weights: this layer's trainable then non-trainable, then each sublayer's."""
        out = self._trainable_variables + self._non_trainable_variables
        for layer in self._layers:
            for v in layer.weights:
                if all(v is not w for w in out):
                    out.append(v)
        return out

    variables = weights

    @property
    def trainable_weights(self):
        return [v for v in self.weights if v.trainable] if self._trainable else []

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        if not self._trainable:
            return self.weights
        return [v for v in self.weights if not v.trainable]

    non_trainable_variables = non_trainable_weights

    def get_weights(self):
        """Copies of the weight values, in ``weights`` order."""
        return [v.numpy().copy() for v in self.weights]

    def set_weights(self, weights):
        """Load a list of arrays in ``get_weights`` order (shapes must match exactly)."""
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"Layer '{self.name}' expects {len(own)} weights, but the weight list "
                             f"provided has {len(weights)} entries.")
        arrays = []
        for v, w in zip(own, weights):
            w = np.asarray(w.value if isinstance(w, Tensor) else w)
            if w.shape != v.shape:
                raise ValueError(f"Layer '{self.name}' weight shape {v.shape} is not compatible with "
                                 f"provided weight shape {w.shape} (weight {v.path!r}).")
            arrays.append(w)
        for v, w in zip(own, arrays):
            v.assign(w.astype(v.dtype, copy=False))

    def count_params(self):
        if not self.built:
            raise ValueError(f"Layer '{self.name}' has not been built yet: call it on data (or build "
                             "it) before counting its parameters.")
        return int(sum(v.size for v in self.weights))

    @property
    def losses(self):
        """Regularization losses (scalar Tensors): weight penalties and the last call's activity
        penalties, for this layer and its sublayers. Differentiable under a GradientTape."""
        out = []
        seen = set()
        for layer in self._flatten_layers():
            for v in layer._trainable_variables + layer._non_trainable_variables:
                if v.regularizer is not None and id(v) not in seen:
                    seen.add(id(v))
                    out.append(v.regularizer(v))
            out.extend(layer._activity_losses)
        return out

    def _flatten_layers(self):
        out, stack, seen = [], [self], set()
        while stack:
            layer = stack.pop(0)
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            out.append(layer)
            stack.extend(layer._layers)
        return out

    # building and calling --------------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        return inputs

    def __call__(self, *args, **kwargs):
        if not args:
            first_name = next(iter(inspect.signature(self.call).parameters), None)
            if first_name not in kwargs:  # Keras binds the inputs by ``call``'s first parameter name too
                raise ValueError(f"Layer '{self.name}' was called without inputs.")
            args = (kwargs.pop(first_name),)
        if kwargs and self._INPUT_KWARGS:
            for key in self._INPUT_KWARGS:
                if key in kwargs and (kwargs[key] is None or len(args) == 1):
                    extra = kwargs.pop(key)
                    if extra is not None:
                        args = args + (extra,)
        first = args[0]
        if type(first) is Tensor and len(args) == 1 and not _kwargs_symbolic(kwargs):
            inputs = self._convert_input(first)  # the common case, kept cheap for batch-1 latency
        elif is_symbolic(args) or is_symbolic(kwargs):
            return self._symbolic_call(args, kwargs)
        else:
            inputs = map_structure(self._convert_input, first)
        if self.input_spec is not None:
            self._check_input(inputs)
        if not self.built:
            with _BUILD_LOCK:  # several threads' first calls build the layer once
                if not self.built:
                    self._build_from(inputs)
        training = kwargs.pop("training", None)
        if training is None:
            training = getattr(_context, "training", None)
        if self._call_has_training:
            kwargs["training"] = training
        mask = kwargs.pop("mask", None)
        if mask is None:
            mask = first.mask if type(first) is Tensor else _mask_of(first)
        if self._call_has_mask and mask is not None:
            kwargs["mask"] = mask
        previous = getattr(_context, "training", None)
        _context.training = training
        updates = None
        if training and getattr(_context, "pending_updates", None) is None:
            updates = StateUpdates().__enter__()  # this call's state updates apply if it completes
        try:
            if self._activity_losses:
                self._activity_losses.clear()
            if self._precision is not None and self._rounds_to_policy:
                outputs = self._call_in_precision(inputs, args[1:], kwargs)
            else:
                outputs = self.call(inputs, *args[1:], **kwargs)
        except BaseException as exc:
            if updates is not None:
                updates.__exit__(type(exc), exc, None)
            raise
        finally:
            _context.training = previous
        if updates is not None:
            updates.__exit__(None, None, None)
        if mask is not None or self._makes_mask:
            outputs = _attach_mask(outputs, self.compute_mask(inputs, mask))
        return outputs

    # Models leave the rounding to their layers (a float32 last layer keeps float32 outputs).
    _rounds_to_policy = True

    def _call_in_precision(self, inputs, args, kwargs):
        """``call`` under a float16/bfloat16 policy, Keras's autocast: float inputs rounded to the
        compute dtype (unless the layer was made with ``autocast=False``), the GEMM and conv ops
        computing in it (ops.core.precision_scope), outputs float16 arrays (float16) or float32
        arrays of bfloat16 values (bfloat16)."""
        from ..ops.core import cast, precision_scope, round_to

        precision = self._precision

        def round_input(t):
            return round_to(t, precision) if isinstance(t, Tensor) and t.value.dtype == np.float32 else t

        def round_output(t):
            if not isinstance(t, Tensor) or t.value.dtype != np.float32:
                return t
            return cast(t, np.float16) if precision == "float16" else round_to(t, precision)

        if self._autocast:
            inputs = round_input(inputs) if type(inputs) is Tensor else map_structure(round_input, inputs)
        with precision_scope(precision):
            outputs = self.call(inputs, *args, **kwargs)
        return round_output(outputs) if type(outputs) is Tensor else map_structure(round_output, outputs)

    def compute_mask(self, inputs, mask=None):
        """The mask of the outputs (Keras): the input mask passes through layers that support
        masking and stops at the others. Embedding(mask_zero=True) and Masking make one."""
        return mask if self.supports_masking else None

    def _convert_input(self, x):
        if type(x) is np.ndarray and x.dtype == self._float_dtype():
            return Tensor(x)
        if isinstance(x, Tensor):
            dtype = x.value.dtype
            if dtype.kind == "f" and dtype != (self._np_dtype or _FLOAT_DTYPES[dl_config._FLOATX]):
                from ..ops import cast

                return cast(x, self._float_dtype())
            return x
        if x is None or isinstance(x, (str, bool)):
            return x
        a = x.to_numpy() if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray) else np.asarray(x)
        if a.dtype.kind in "USO" and self._takes_strings():
            return Tensor(a)
        if a.dtype.kind not in "biuf":
            check_numeric(a, f"{type(self).__name__} '{self.name}' (inputs)")
        if a.dtype.kind == "f" or (a.dtype.kind in "iub" and self._casts_integer_inputs()):
            a = a.astype(self._float_dtype(), copy=False)
        return Tensor(a)

    def _takes_strings(self):
        """Whether string inputs reach ``call``: layers that take them (StringLookup, Hashing,
        TextVectorization) say so, an Input of dtype "string" does, and so does a model with such an
        input, or a Sequential whose first layer takes strings."""
        inputs = self.__dict__.get("_flat_inputs") or ()
        if self.__dict__.get("_input_dtype") == "object" or any(t.dtype == "object" for t in inputs):
            return True
        if "_input_layer" not in self.__dict__:
            return False
        first = self.__dict__["_input_layer"] or next(iter(self.__dict__.get("_layers") or ()), None)
        return first is not None and first._takes_strings()

    def _casts_integer_inputs(self):
        """Integer inputs become floats, as Keras autocasts them, unless a layer takes ids."""
        return True

    def _build_from(self, inputs):
        shapes = map_structure(lambda t: tuple(t.shape) if hasattr(t, "shape") else None, inputs)
        self.build(shapes)
        self.built = True

    def _check_input(self, inputs):
        spec = self.input_spec
        if spec is None or not isinstance(spec, InputSpec):
            return
        for x in ((inputs,) if type(inputs) is Tensor else flatten(inputs)):
            shape = getattr(x, "shape", None)
            if shape is None:
                continue
            ndim = len(shape)
            if spec.ndim is not None and ndim != spec.ndim:
                raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                                 f"ndim={spec.ndim}, found ndim={ndim}. Full shape received: {tuple(shape)}")
            if spec.min_ndim is not None and ndim < spec.min_ndim:
                raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                                 f"min_ndim={spec.min_ndim}, found ndim={ndim}. Full shape received: "
                                 f"{tuple(shape)}")
            for axis, size in spec.axes.items():
                if size is not None and ndim > 0 and shape[axis] is not None and shape[axis] != size:
                    raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: "
                                     f"expected axis {axis} of input shape to have value {size}, but "
                                     f"received input with shape {tuple(shape)}")

    # symbolic (functional API) -----------------------------------------------------------------
    def _symbolic_call(self, args, kwargs):
        inputs = args[0]
        self._check_input(inputs)
        out_spec = self.compute_output_spec(inputs, *args[1:], **kwargs)
        node = CallNode(self, args, kwargs, None)
        counter = iter(range(1 << 30))
        outputs = map_structure(lambda s: KerasTensor(s.shape, s.dtype, node, next(counter), name=self.name), out_spec)
        node.outputs = outputs
        self._inbound_nodes.append(node)
        return outputs

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape`` (batch None); found by running the layer on zeros
        unless a subclass gives the formula."""
        spec = self.compute_output_spec(map_structure(lambda s: KerasTensor(s), input_shape,)
                                        if not _is_shape(input_shape) else KerasTensor(input_shape))
        return map_structure(lambda s: s.shape, spec)

    def compute_output_spec(self, inputs, *args, **kwargs):
        """Output KerasTensors for symbolic ``inputs``: run the layer on zero-filled data (batch 1);
        when some dimensions are unknown, run it twice (unknown dimensions 32, then 48: sizes that
        stay distinct through a few strided or pooled stages) and mark the dimensions that changed
        as None."""
        results = []
        for fill in (32, 48):
            def concrete(t, fill=fill):
                if not isinstance(t, KerasTensor):
                    return t
                shape = tuple((1 if i == 0 else fill) if d is None else d for i, d in enumerate(t.shape))
                return Tensor(np.zeros(shape, dtype=t.dtype))

            concrete_args = map_structure(concrete, (inputs,) + args)
            concrete_kwargs = {k: map_structure(concrete, v) for k, v in kwargs.items()}
            concrete_kwargs.setdefault("training", False)
            with no_grad():
                out = self(*concrete_args, **concrete_kwargs)
            results.append(out)
            if not any(None in t.shape[1:] for t in flatten((inputs,) + args) if isinstance(t, KerasTensor)):
                break  # only the batch dimension is unknown: one run tells everything
        first = results[0]
        other = results[-1]

        def spec(a, b):
            shape = tuple(None if i == 0 or da != db else da for i, (da, db) in enumerate(zip(a.shape, b.shape)))
            return KerasTensor(shape, a.dtype)

        return map_structure_pair(spec, first, other)

    @property
    def input(self):
        """The symbolic input of this layer's first call in a functional graph."""
        node = self._first_node("input")
        return node.args[0]

    @property
    def output(self):
        """The symbolic output of this layer's first call in a functional graph."""
        return self._first_node("output").outputs

    @property
    def input_shape(self):
        return map_structure(lambda t: t.shape, self.input)

    @property
    def output_shape(self):
        return map_structure(lambda t: t.shape, self.output)

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on a symbolic input, so it "
                                 f"has no defined {what}.")
        return self._inbound_nodes[0]

    # configuration ---------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": self._dtype if self._dtype is not None else dl_config.floatx()}
        if self._input_shape_arg is not None:
            config["batch_input_shape"] = self._input_shape_arg
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _kwargs_symbolic(kwargs):
    """Whether a call's keyword arguments hold a KerasTensor (flags and None are skipped cheaply)."""
    for v in kwargs.values():
        if v is not None and v is not True and v is not False and is_symbolic(v):
            return True
    return False


def _mask_of(x):
    """The mask carried by an input (a Tensor's ``mask``, or a list of them; None if none)."""
    if isinstance(x, Tensor):
        return x.mask
    if isinstance(x, (list, tuple)):
        masks = [t.mask if isinstance(t, Tensor) else None for t in x]
        return masks if any(m is not None for m in masks) else None
    return None


def _attach_mask(outputs, mask):
    """``outputs`` carrying ``mask``. An output that already carries another mask is a tensor a
    layer passed through (its input, still read by other layers with its own mask): it gets a new
    Tensor on the same value and graph node instead of losing its mask."""
    if isinstance(outputs, Tensor):
        return _with_mask(outputs, mask)
    if isinstance(outputs, (list, tuple)):
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(outputs)
        tensors = [_with_mask(t, m) if isinstance(t, Tensor) else t for t, m in zip(outputs, masks)]
        return type(outputs)(tensors + list(outputs[len(tensors):]))
    return outputs


def _with_mask(t, mask):
    if t.mask is not None and t.mask is not mask and type(t) is Tensor:
        t = Tensor(t.value, t.node, t.index)
    t.mask = mask
    return t


def _is_shape(x):
    return isinstance(x, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in x)


def map_structure_pair(fn, a, b):
    if isinstance(a, (list, tuple)):
        return type(a)(map_structure_pair(fn, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: map_structure_pair(fn, a[k], b[k]) for k in a}
    return fn(a, b)
