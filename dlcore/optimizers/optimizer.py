"""The Optimizer base class, as ``keras.optimizers.Optimizer`` (Keras 3 names, arguments,
defaults and update formulas; the optimizers themselves are one module each beside this one).

An optimizer updates variables in place: ``optimizer.apply(grads, variables)`` (or
``apply_gradients(zip(grads, variables))``) clips the gradients, applies weight decay, runs one
fused kernel per variable (``dlcore.kernels.optim``: ``sgd_update``, ``adam_update``, ...) on flat
views of the variable, its gradient and its slot arrays, applies each variable's constraint, and
counts the step in ``iterations``.

Design:
  - Slots are plain C-contiguous ndarrays owned by the optimizer (``variables``: the iteration
    counter, a 0-d int64 array, then the slots in Keras's creation order). They are updated in
    place for the optimizer's lifetime, so flat views of them are made once, at ``build``.
  - The update itself is one kernel call per variable (plus ``decay_weights`` when weight decay
    applies); NumPy touches whole arrays only where no kernel exists: dtype/contiguity
    conversion of a gradient, clipping, loss scaling, gradient accumulation and EMA.
  - Step scalars (Adam's alpha, Adamax's lr / (1 - beta_1^t)) are computed once per step and
    dtype, in the variable's dtype as Keras computes them; Nadam's coefficients come from
    ``kernels.optim.nadam_coefficients``.
  - The learning rate is a Python float (Keras keeps a floatx variable): the kernels round it to
    the variable's dtype, so float32 updates match Keras and float64 updates use the exact value.
  - Numba is not imported by this module: the kernels compile on the first ``apply``.
  - Thread policy: the kernels run serially below kernels' PARALLEL_MIN_WORK elements (see
    kernels/_config.LazyJit); updates are elementwise, so results do not depend on it.

Custom optimizers subclass :class:`Optimizer` as in Keras: ``build`` calls ``super().build`` and
creates slots with ``add_variable_from_reference`` / ``add_optimizer_variables`` (ndarrays here),
and ``update_step(gradient, variable, learning_rate)`` receives an ndarray gradient (the
variable's dtype and shape, C-contiguous), a Variable and a float, and updates in place
(``self.assign_sub(variable, ...)`` or NumPy on ``variable.value``).
"""
import inspect
import math
import re
import warnings

import numpy as np

from .. import devices as _devices
from .. import kernels as _kernels
from ..distribute.strategy import get_strategy, has_strategy
from ..tensor import Tensor, Variable
from . import schedules
from .schedules import LearningRateSchedule

_KIND = "optimizer"

_EMPTY = {}


def _empty(dtype):
    """A shared size-0 array of ``dtype``: the kernels' placeholder for an unused slot."""
    arr = _EMPTY.get(dtype)
    if arr is None:
        arr = _EMPTY[dtype] = np.empty(0, dtype=dtype)
    return arr


def _zeros(shape, dtype, like):
    """Zeros on the device ``like`` lives on (the norm accumulators of clipping and Lamb)."""
    if _devices.is_device_array(like):
        return _devices.zeros_like(_devices.empty(shape, dtype, like))
    return np.zeros(shape, dtype)


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _assign(target, value):
    """Overwrite a state array in place: a host array, or a GPU slot (the values copied in)."""
    if _devices.is_device_array(target):
        target.copy_to_device(np.ascontiguousarray(value, dtype=target.dtype))
    else:
        target[...] = value


def _label(variable):
    return getattr(variable, "path", None) or getattr(variable, "name", None) or repr(variable)


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _takes_step(fn):
    """Whether a learning-rate callable takes the step (Keras 3 calls a plain callable with no
    arguments; a callable with a positional parameter receives ``iterations``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.VAR_POSITIONAL)
    return any(p.kind in kinds for p in params)


def _as_learning_rate(value):
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, Tensor):
        value = value.value
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        return float(value.reshape(-1)[0])
    if _is_number(value):
        return float(value)
    if callable(value):
        return value
    raise ValueError("Argument `learning_rate` should be float, or an instance of "
                     "LearningRateSchedule, or a callable (that takes in the current iteration "
                     "value and returns the corresponding learning rate value). "
                     f"Received instead: learning_rate={value!r}")


class Optimizer:
    """Base class of the optimizers (Keras 3 ``keras.optimizers.Optimizer``).

    Arguments (every optimizer): ``learning_rate`` (float, LearningRateSchedule, or a callable
    returning the rate), ``weight_decay`` (decoupled: ``w -= w * weight_decay * lr`` before each
    update), ``clipnorm`` (clip each gradient to this norm), ``clipvalue`` (clip elementwise to
    [-clipvalue, clipvalue]), ``global_clipnorm`` (scale all gradients so their global norm is at
    most this; at most one of the three clipping arguments), ``use_ema``/``ema_momentum``/
    ``ema_overwrite_frequency`` (exponential moving average of the weights),
    ``loss_scale_factor`` (gradients are divided by it; ``scale_loss`` multiplies the loss),
    ``gradient_accumulation_steps`` (update every n calls with the mean gradient), ``name``.
    """

    _kernel_name = None  # the fused update kernel of a built-in optimizer
    runs_on_gpu = False  # True where update_step calls device kernels itself (no _kernel_name)
    _device = "cpu"  # where the variables live: "cpu" or "cuda" (set by build)

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        for arg, value in (("weight_decay", weight_decay), ("clipnorm", clipnorm),
                           ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm),
                           ("loss_scale_factor", loss_scale_factor)):
            if value is not None and not _is_number(value):
                raise ValueError(f"Argument `{arg}` must be a float or None. Received: {arg}={value!r}")
        clip_args_sum = sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm))
        if clip_args_sum > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                             f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        if gradient_accumulation_steps:
            if (not isinstance(gradient_accumulation_steps, (int, np.integer))
                    or gradient_accumulation_steps < 2):
                raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. "
                                 f"Received: gradient_accumulation_steps={gradient_accumulation_steps}")
            gradient_accumulation_steps = int(gradient_accumulation_steps)
        if use_ema:
            if ema_momentum > 1 or ema_momentum < 0:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (not isinstance(ema_overwrite_frequency, int)
                                            or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                                 f"Received: ema_overwrite_frequency={ema_overwrite_frequency}")
        self.name = name if name is not None else _snake_case(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = bool(use_ema)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.built = False

        self._variables = []
        self._variable_names = []
        self._trainable_variables = []
        self._trainable_variables_indices = {}
        self._iterations = np.zeros((), dtype=np.int64)
        self._track_variable(self._iterations, "iteration")

        self._learning_rate = None
        self._lr_takes_step = True
        self.learning_rate = learning_rate  # through the setter's checks

        self._excluded_variables = []
        self._exclude_from_weight_decay_pattern = None
        self._exclude_from_weight_decay_cache = {}
        self._step_cache = {}
        self._kernel = None
        # created inside a distribution scope: apply_gradients averages the gradients over replicas
        self._distribute_strategy = get_strategy() if has_strategy() else None
        self._replicas_checked = False

    # ---- step counter and learning rate -------------------------------------------------------
    @property
    def iterations(self):
        """Updates applied so far (an int); with gradient accumulation, applied updates, not calls."""
        n = int(self._iterations)
        if self.gradient_accumulation_steps:
            return n // self.gradient_accumulation_steps
        return n

    @property
    def learning_rate(self):
        """The current learning rate (a float; a schedule is evaluated at the step count)."""
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        value = _as_learning_rate(learning_rate)
        if (isinstance(value, float) and isinstance(self._learning_rate, LearningRateSchedule)):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not "
                            "settable. If you need the learning rate to be settable, you should "
                            "instantiate the optimizer with a float `learning_rate` argument.")
        if callable(value) and not isinstance(value, LearningRateSchedule):
            self._lr_takes_step = _takes_step(value)
        self._learning_rate = value

    def _get_current_learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, float):
            return lr
        if isinstance(lr, LearningRateSchedule):
            return float(lr(int(self._iterations)))
        value = lr(int(self._iterations)) if self._lr_takes_step else lr()
        return float(value.value if isinstance(value, Tensor) else value)

    # ---- variables ----------------------------------------------------------------------------
    @property
    def variables(self):
        """The optimizer's state arrays, live: the iteration counter (0-d int64), then the slots."""
        return self._variables[:]

    # ---- pickling -----------------------------------------------------------------------------
    _FLAT_VIEWS = {}  # {attribute: slot list attribute}: flat views of the slots the kernels update

    def _make_flat_views(self):
        """The 1-D views of the slot arrays that the update kernels write through."""
        for flat, slots in self._FLAT_VIEWS.items():
            setattr(self, flat, [a.reshape(-1) for a in getattr(self, slots)])

    def __getstate__(self):
        """The optimizer's state for pickle (``pickle.dumps(model)``, as Keras models allow):
        everything but the compiled kernel, the flat views (pickle would copy them apart from
        their slots) and the caches keyed by object ids."""
        state = dict(self.__dict__)
        for key in ("_kernel", "_trainable_variables_indices", "_exclude_from_weight_decay_cache",
                    "_distribute_strategy", *self._FLAT_VIEWS):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._kernel = (_kernels.get(self._kernel_name, self._device) if self.built and self._kernel_name
                        else None)
        self._trainable_variables_indices = {id(v): i for i, v in enumerate(self._trainable_variables)}
        self._exclude_from_weight_decay_cache = {}
        if self.built:
            self._make_flat_views()

    def _track_variable(self, array, name):
        self._variables.append(array)
        self._variable_names.append(name)

    def _var_key(self, variable):
        return id(variable)

    def _get_variable_index(self, variable):
        return self._trainable_variables_indices[id(variable)]

    def build(self, var_list):
        """Record the variables this optimizer updates and create its slots (idempotent)."""
        if self.built:
            return
        var_list = list(var_list)
        for i, variable in enumerate(var_list):
            value = getattr(variable, "value", None)
            if not isinstance(value, (np.ndarray, *_devices.ARRAY_TYPES)):
                raise TypeError(f"Optimizer '{self.name}' updates dlcore Variables; received "
                                f"{type(variable).__name__} {variable!r}")
            if value.dtype.kind != "f":
                raise TypeError(f"Optimizer '{self.name}' can only update float variables; variable "
                                f"'{_label(variable)}' has dtype {value.dtype}")
            if isinstance(value, np.ndarray) and not value.flags.c_contiguous:
                raise ValueError(f"Optimizer '{self.name}': variable '{_label(variable)}' is not "
                                 "C-contiguous and cannot be updated in place")
            self._trainable_variables_indices[id(variable)] = i
        self._trainable_variables = var_list
        device = "cuda" if any(_devices.is_device_array(v.value) for v in var_list) else "cpu"
        if device != "cpu":
            self._check_gpu_support(var_list)
        self._device = device
        if self.use_ema:
            self._model_variables_moving_average = self.add_optimizer_variables(var_list, "average")
        if self.gradient_accumulation_steps:
            self._accumulated_gradients = self.add_optimizer_variables(var_list, "gradient_accumulator")
        if self._kernel_name is not None:
            self._kernel = _kernels.get(self._kernel_name, device)
        self.built = True

    def _check_gpu_support(self, var_list):
        """ValueError naming what this optimizer's GPU path does not do: an update without a device
        kernel (custom optimizers with a NumPy update_step), a mix of host and GPU variables."""
        try:
            kernel = _kernels.get(self._kernel_name, "cuda") if self._kernel_name else None
        except KeyError:
            kernel = None
        if kernel is None and not self.runs_on_gpu:
            raise ValueError(f"Optimizer '{self.name}' on the GPU: {type(self).__name__} has no GPU update "
                             "(every built-in optimizer has one; a custom update_step runs on NumPy arrays); "
                             "train it on the CPU")
        on_host = [_label(v) for v in var_list if not _devices.is_device_array(v.value)]
        if on_host:
            raise ValueError(f"Optimizer '{self.name}': the variables must all live on the GPU or all on "
                             f"the host; received host variables {on_host} beside GPU ones")

    def _kernel_for(self, name):
        """The kernel ``name`` for the device the variables live on."""
        return _kernels.get(name, self._device)

    def add_variable(self, shape, initializer="zeros", dtype=None, name=None):
        """A new slot array (C-contiguous), tracked in ``variables``."""
        from .. import config

        dtype = np.dtype(dtype if dtype is not None else config.floatx())
        shape = tuple(int(d) for d in shape)
        if isinstance(initializer, str) and initializer in ("zeros", "zero"):
            array = np.zeros(shape, dtype=dtype)
        elif _is_number(initializer):
            array = np.full(shape, initializer, dtype=dtype)
        else:
            from .. import initializers

            array = np.array(initializers.get(initializer)(shape, dtype=dtype), dtype=dtype,
                             order="C", copy=True)
        self._track_variable(array, name or "variable")
        return array

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A slot of the shape and dtype of ``reference_variable``, named after it."""
        name = _label(reference_variable).replace("/", "_") + "_" + (name or "var")
        value = reference_variable.value
        self.add_variable(value.shape, initializer=initializer, dtype=value.dtype, name=name)
        return self._place_like(value)

    def _place_like(self, value):
        """The slot added last, moved to the GPU when ``value`` (its variable's) lives there."""
        if _devices.is_device_array(value):  # a GPU variable's slots live beside it
            self._variables[-1] = _devices.to_device(self._variables[-1])
        return self._variables[-1]

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """One slot per variable for each of ``name`` (a string or a list of strings), created
        interleaved (variable by variable) as Keras does; a list, or a tuple of lists."""
        names = [name] if isinstance(name, str) else list(name)
        inits = initializer if isinstance(initializer, (list, tuple)) else [initializer] * len(names)
        if len(names) != len(inits):
            raise ValueError("The number of provided names must match the number of provided "
                             f"initializers. Received name='{name}', initializer='{initializer}'")
        slots = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (slot_name, init) in enumerate(zip(names, inits)):
                slots[i].append(self.add_variable_from_reference(variable, slot_name, init))
        return slots[0] if isinstance(name, str) else slots

    def _check_variables_are_known(self, variables):
        for v in variables:
            if id(v) not in self._trainable_variables_indices:
                raise ValueError(f"Unknown variable: '{_label(v)}'. This optimizer can only be called "
                                 "for the variables it was originally built with. When working with "
                                 "a new set of variables, you should recreate a new optimizer instance.")

    # ---- state (exact resume) -----------------------------------------------------------------
    def get_state(self):
        """Copies of ``variables``: [iterations (0-d int64), slot arrays in order]."""
        return [np.array(_devices.to_host(v), copy=True) for v in self._variables]

    def set_state(self, state):
        """Restore ``get_state()`` output (same optimizer class, built on variables of the same
        shapes, in the same order); slots are overwritten in place."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' must be built before its state is set: call "
                             "`optimizer.build(trainable_variables)` first.")
        state = list(state)
        if len(state) != len(self._variables):
            raise ValueError(f"Optimizer '{self.name}' has {len(self._variables)} state arrays "
                             f"(iterations + slots) but the given state has {len(state)}.")
        arrays = []
        for target, name, value in zip(self._variables, self._variable_names, state):
            value = np.asarray(value.value if isinstance(value, Tensor) else value)
            if value.shape != target.shape:
                raise ValueError(f"Optimizer '{self.name}': state array '{name}' has shape "
                                 f"{target.shape}, received {value.shape}")
            arrays.append(value)
        for target, value in zip(self._variables, arrays):
            _assign(target, value)

    def set_weights(self, weights):
        """Keras's ``set_weights``: assign ``weights`` to ``variables`` in order."""
        if not self.built:
            raise ValueError("You are calling `set_weights()` on an optimizer that has not yet been "
                             "built. Please call `optimizer.build(trainable_variables)` to create the "
                             "optimizer weights before calling `set_weights()`.")
        for target, name, weight in zip(self._variables, self._variable_names, weights):
            weight = np.asarray(weight)
            if target.shape != weight.shape:
                raise ValueError(f"Optimizer variable '{name}' has shape {target.shape} not compatible "
                                 f"with provided weight shape {weight.shape}.")
            _assign(target, weight)

    def save_own_variables(self, store):
        """Keras's saving hook: ``store[str(i)]`` = the i-th state array."""
        for i, variable in enumerate(self._variables):
            store[str(i)] = np.array(_devices.to_host(variable), copy=True)

    def load_own_variables(self, store):
        """Keras's loading hook (warns and skips on a count mismatch, as Keras does)."""
        if len(store.keys()) != len(self._variables):
            msg = (f"Skipping variable loading for optimizer '{self.name}', because it has "
                   f"{len(self._variables)} variables whereas the saved optimizer has "
                   f"{len(store.keys())} variables. ")
            if len(self._variables) <= 1:
                msg += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(msg, stacklevel=2)
            return
        for i, variable in enumerate(self._variables):
            _assign(variable, np.asarray(store[str(i)]))

    # ---- applying gradients -------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Apply ``(gradient, variable)`` pairs; returns ``iterations``."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(grads, variables)
        return self.iterations

    def apply(self, grads, trainable_variables=None):
        """Update ``trainable_variables`` (default: those the optimizer was built with) in place
        with ``grads`` (Tensors, arrays or None; a None gradient skips its variable)."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already "
                                 "be built on a list of variables. Call "
                                 "`optimizer.build(trainable_variables)` first.")
            if len(grads) != len(self._trainable_variables):
                raise ValueError("When passing `grads` as a list of gradient tensors, the gradients "
                                 "must match `optimizer.variables` one-to-one. Received a list of "
                                 f"{len(grads)} gradients, but the optimizer is tracking "
                                 f"{len(self._trainable_variables)} trainable variables.")
            variables = self._trainable_variables
        else:
            variables = list(trainable_variables)
            if len(variables) != len(grads):
                raise ValueError(f"Optimizer '{self.name}': received {len(grads)} gradients for "
                                 f"{len(variables)} variables")
            if not self.built:
                self.build(variables)
            self._check_variables_are_known(variables)

        Variable.epoch += 1  # the variables change in place below
        kept_grads, kept_vars = [], []
        for grad, variable in zip(grads, variables):
            if grad is None:
                continue
            kept_grads.append(self._convert_gradient(grad, variable))
            kept_vars.append(variable)
        if not kept_grads:
            raise ValueError("No gradients provided for any variable.")

        strategy = self.__dict__.get("_distribute_strategy")
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            kept_grads = self._reduce_over_replicas(strategy, kept_grads, kept_vars)

        scale = self.loss_scale_factor
        if scale is not None:
            if self._device == "cuda":
                kept_grads = [self._axpby(g, 1.0 / scale, g, 0.0) for g in kept_grads]
            else:
                kept_grads = [g / g.dtype.type(scale) for g in kept_grads]

        self._backend_apply_gradients(kept_grads, kept_vars)
        for variable in kept_vars:
            constraint = getattr(variable, "constraint", None)
            if constraint is not None:
                out = constraint(variable.value)
                variable.value[...] = out.value if isinstance(out, Tensor) else out
        self._iterations += 1

    def _reduce_over_replicas(self, strategy, grads, variables):
        """The gradients summed over replicas with each replica's share of the global batch (the
        mean in a custom loop); the first call checks that every replica holds the same model."""
        if not self.__dict__.get("_replicas_checked"):
            where = f"Optimizer '{self.name}' (distributed, first step)"
            strategy.check_same_variables(variables, where)
            strategy.check_same_values(variables, where)
            self._replicas_checked = True
        return strategy.all_reduce_gradients(grads, weight=strategy._step_weight)

    def _convert_gradient(self, grad, variable):
        value = variable.value
        if isinstance(grad, Tensor):
            grad = grad.value
        if _devices.is_device_array(value):
            if not _devices.is_device_array(grad) or grad.shape != value.shape or grad.dtype != value.dtype:
                raise ValueError(f"Optimizer '{self.name}': the gradient for GPU variable '{_label(variable)}' must "
                                 f"be a device array of shape {value.shape} and dtype {value.dtype}; received "
                                 f"{type(grad).__name__} of shape {getattr(grad, 'shape', None)}")
            return grad
        if not isinstance(grad, np.ndarray):
            grad = np.asarray(grad)
        if grad.shape != value.shape:
            raise ValueError(f"Optimizer '{self.name}': the gradient for variable '{_label(variable)}' "
                             f"has shape {grad.shape}, but the variable has shape {value.shape}")
        if grad.dtype != value.dtype or not grad.flags.c_contiguous:
            grad = np.ascontiguousarray(grad, dtype=value.dtype)
        return grad

    def _backend_apply_gradients(self, grads, trainable_variables):
        learning_rate = self._get_current_learning_rate()
        steps = self.gradient_accumulation_steps
        if steps:
            accumulators = [self._accumulated_gradients[self._get_variable_index(v)]
                            for v in trainable_variables]
            gpu = self._device == "cuda"
            if (int(self._iterations) + 1) % steps == 0:
                if gpu:
                    grads = [self._axpby(g, 1.0 / steps, acc, 1.0 / steps) for g, acc in zip(grads, accumulators)]
                else:
                    grads = [(g + acc) / g.dtype.type(steps) for g, acc in zip(grads, accumulators)]
                grads = self._clip_gradients(grads)
                self._apply_weight_decay(trainable_variables, learning_rate)
                self._backend_update_step(grads, trainable_variables, learning_rate)
                for acc in self._accumulated_gradients:
                    if gpu:
                        acc.reshape(-1)[:] = 0  # a device array takes no [...] (nor [:] at rank 0)
                    else:
                        acc[...] = 0
            else:
                for g, acc in zip(grads, accumulators):
                    if gpu:
                        self._axpby(acc, 1.0, g, 1.0, out=acc)
                    else:
                        acc += g
        else:
            grads = self._clip_gradients(grads)
            self._apply_weight_decay(trainable_variables, learning_rate)
            self._backend_update_step(grads, trainable_variables, learning_rate)

        if self.use_ema:
            self._update_model_variables_moving_average(self._trainable_variables)
            if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
                self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        for grad, variable in zip(grads, trainable_variables):
            self.update_step(grad, variable, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        """Update ``variable`` in place from ``gradient`` (ndarray of its shape and dtype)."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  "update_step(gradient, variable, learning_rate)")

    def assign(self, variable, value):
        """``variable[...] = value`` for a Variable or a slot array."""
        target = variable.value if isinstance(variable, Tensor) else variable
        target[...] = value.value if isinstance(value, Tensor) else value

    def assign_add(self, variable, value):
        target = variable.value if isinstance(variable, Tensor) else variable
        target += value.value if isinstance(value, Tensor) else value

    def assign_sub(self, variable, value):
        target = variable.value if isinstance(variable, Tensor) else variable
        target -= value.value if isinstance(value, Tensor) else value

    def scale_loss(self, loss):
        """``loss * loss_scale_factor`` when one is set (gradients are divided back in apply)."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    def _axpby(self, x, a, y, b, out=None):
        """a x + b y on the variables' device (into ``out``, else a new array)."""
        out = _devices.empty(x.shape, x.dtype, x) if out is None else out
        self._kernel_for("axpby")(x.reshape(-1), a, y.reshape(-1), b, out.reshape(-1))
        return out

    # ---- clipping -----------------------------------------------------------------------------
    def _clip_gradients(self, grads):
        if self._device == "cuda":
            return self._clip_gradients_on_device(grads)
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = float(self.clipvalue)
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def _clip_gradients_on_device(self, grads):
        """The CPU rules of `_clip_gradients` with device kernels, into new arrays (the caller's
        gradients are not changed); the norms stay on the device."""
        if self.clipnorm and self.clipnorm > 0:
            groups, limit, nonfinite_nan = [[g] for g in grads], float(self.clipnorm), False
        elif self.global_clipnorm and self.global_clipnorm > 0:
            groups, limit, nonfinite_nan = [list(grads)], float(self.global_clipnorm), True
        elif self.clipvalue and self.clipvalue > 0:
            clip = self._kernel_for("clip_values")
            out = [_devices.empty(g.shape, g.dtype, g) for g in grads]
            for g, o in zip(grads, out):
                clip(g.reshape(-1), float(self.clipvalue), o.reshape(-1))
            return out
        else:
            return grads
        sum_squares, scale = self._kernel_for("sum_squares"), self._kernel_for("scale_by_norm")
        out = []
        for group in groups:
            total = _zeros((1,), np.float64, group[0])
            for g in group:
                sum_squares(g.reshape(-1), total)
            for g in group:
                o = _devices.empty(g.shape, g.dtype, g)
                scale(g.reshape(-1), total, limit, nonfinite_nan, o.reshape(-1))
                out.append(o)
        return out

    def _clip_by_norm(self, grad):
        flat = grad.reshape(-1)
        norm = math.sqrt(float(np.dot(flat, flat)))
        clip = float(self.clipnorm)
        scale = clip / max(norm, clip) if norm == norm else math.nan
        return grad if scale == 1.0 else grad * grad.dtype.type(scale)

    # ---- weight decay -------------------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exempt variables from weight decay: those in ``var_list``, and those whose name
        contains any of the strings (regular expressions) in ``var_names``."""
        self._excluded_variables = list(var_list) if var_list else []
        if var_names:
            self._exclude_from_weight_decay_pattern = re.compile("|".join(set(var_names)))
        else:
            self._exclude_from_weight_decay_pattern = None
        self._exclude_from_weight_decay_cache = {}

    def _use_weight_decay(self, variable):
        key = id(variable)
        cached = self._exclude_from_weight_decay_cache.get(key)
        if cached is not None:
            return cached
        use = all(variable is not v for v in self._excluded_variables)
        pattern = self._exclude_from_weight_decay_pattern
        if use and pattern is not None and pattern.search(getattr(variable, "name", "") or "") is not None:
            use = False
        self._exclude_from_weight_decay_cache[key] = use
        return use

    def _apply_weight_decay(self, variables, learning_rate=None):
        if self.weight_decay is None:
            return
        if learning_rate is None:
            learning_rate = self._get_current_learning_rate()
        factor = float(learning_rate) * float(self.weight_decay)
        decay = self._kernel_for("decay_weights")
        for variable in variables:
            if self._use_weight_decay(variable):
                decay(variable.value.reshape(-1), factor)

    # ---- moving average of the weights (use_ema) ----------------------------------------------
    def _update_model_variables_moving_average(self, trainable_variables):
        momentum = float(self.ema_momentum) if self.iterations != 0 else 0.0
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            value = variable.value
            if self._device == "cuda":
                self._axpby(average, momentum, value, 1.0 - momentum, out=average)
                continue
            average *= value.dtype.type(momentum)
            average += value * value.dtype.type(1.0 - momentum)

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        if len(trainable_variables) != len(self._model_variables_moving_average):
            raise ValueError(f"The length of model variables ({len(trainable_variables)}) to override "
                             "does not match the length of model variables stored in the optimizer "
                             f"({len(self._model_variables_moving_average)}). Please check if the "
                             "optimizer was called on your model.")
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if self._device == "cuda":
                variable.value.copy_to_device(average)
            else:
                variable.value[...] = average

    def finalize_variable_values(self, var_list):
        """With ``use_ema``, overwrite the variables with their moving averages (end of fit)."""
        if self.use_ema and self.built:
            self._overwrite_model_variables_with_average_value(list(var_list))

    # ---- configuration ------------------------------------------------------------------------
    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            learning_rate = schedules.serialize(lr)
        elif isinstance(lr, float):
            learning_rate = lr
        else:
            learning_rate = lr  # a plain callable: kept as is (not JSON-serializable)
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self):
        lr = self._learning_rate
        lr = lr if isinstance(lr, float) else type(lr).__name__
        return f"<{type(self).__name__} name={self.name} learning_rate={lr} iterations={self.iterations}>"


def clip_by_global_norm(grads, clip_norm):
    """Scale ``grads`` by min(1, clip_norm / global_norm) (NaN when the norm is not finite)."""
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        scale = math.nan
    elif norm == 0.0:
        scale = 1.0
    else:
        scale = min(float(clip_norm) / norm, 1.0)
    if scale == 1.0:
        return list(grads)
    return [g * g.dtype.type(scale) for g in grads]
