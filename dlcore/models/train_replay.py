"""Captured training steps: the forward and backward pass of the default ``train_step`` as a list
of kernel calls, replayed for later batches of the same shapes with no layer, op or autograd
Python between the kernels (as Keras runs its train step from a traced function). The loss
tracker, the metrics and the optimizer still run as Python after it, so learning-rate schedules,
gradient clipping, callbacks and Adam's step count behave as in an uncaptured step.

A key (the batch's shapes and dtypes, the thread count, the trainable variables, the optimizer)
is captured at its second step, in three passes over one batch copied into the program's own
input buffers:

A. the forward and backward pass on a perturbed copy of the batch and of every float weight (the
   weights restored after, its state updates dropped, the random generators put back);
B. the same on the batch itself and the real weights: the step's result;
C. A's kernel calls replayed on the batch and the real weights, which must reproduce B's loss,
   predictions and gradients bit for bit and leave the random generators as B did (dropout draws
   its keys inside a kernel call, ``philox_uniform_drawn``: a draw in Python would be missing),
   then on A's inputs, which must reproduce A's.

A and B must make the same kernel calls (``replay._same_calls``). Work done in Python between the
kernels on values that depend on the batch or on the weights (a NumPy temporary, a copy of a
weight) leaves A's stale values in C and fails it, and the key then runs uncaptured for good.
Refused up front: ``compile(run_eagerly=True)``, custom layers or functions (``replay.capturable``),
overridden ``compute_loss``, sample weights, several outputs (their loss trackers read each step's
values in Python), regularization losses, loss scaling, state updates (BatchNormalization's moving
statistics), a distribution strategy, variables off the CPU. The variables' buffers never move
(``Variable.assign`` copies into them), so a program stays valid while the key holds; ``compile``
drops the programs. Layer attributes the step reads in Python (a Dropout's rate) are the
capture's, as in a traced Keras step. A program keeps its step's activations and gradients (the
arrays of pass A) for as long as it lives; at most ``MAX_KEYS`` keys are kept per model.
"""
import warnings

import numpy as np

from .. import kernels
from .._tree import flatten, map_structure
from ..autograd import GradientTape
from ..layers.layer import _context
from ..tensor import Tensor
from ..utils import random as _random
from .replay import _perturbed, _same_calls, capturable, replayable, same_bits

MAX_KEYS = 4


class TrainProgram:
    """The kernel calls of a captured forward and backward pass: ``run(arrays)`` copies the batch
    into the program's input buffers, makes the calls and returns ``(y_pred, loss, grads)``, the
    arrays of pass A, which the calls overwrite at every run."""

    __slots__ = ("inputs", "calls", "result")

    def __init__(self, inputs, calls, result):
        self.inputs = inputs
        self.calls = replayable(calls)
        self.result = result

    def run(self, arrays):
        for buffer, a in zip(self.inputs, arrays):
            np.copyto(buffer, a)
        for fn, args in self.calls:
            fn(*args)
        return self.result


class _Programs(dict):
    """A model's captured steps by key (a program, 1: seen once, False: refused)."""

    def __reduce__(self):  # a copied or pickled model captures its steps again
        return (_Programs, ())


def forward_backward(model, x, y, sample_weight, variables=None):
    """The default train_step's forward pass, loss and gradients, under a GradientTape:
    ``(y_pred, loss, grads, variables, whether the loss was not scaled)``; ``variables`` None: the
    trainable weights after the forward pass (which builds an unbuilt model)."""
    with GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        # loss scaling (LossScaleOptimizer, loss_scale_factor): the optimizer unscales the gradients
        scaled_loss = model.optimizer.scale_loss(loss) if model.optimizer is not None else loss
    if variables is None:
        variables = model.trainable_weights
    grads = tape.gradient(scaled_loss, variables) if variables else None
    return y_pred, loss, grads, variables, scaled_loss is loss


def step(model, x, y, sample_weight):
    """``(y_pred, loss, grads, variables)`` of ``forward_backward``, or of the program captured for
    this key (see the module docstring)."""
    x = _as_input_dtypes(model, x)
    arrays = flatten(x) + flatten(y)
    if (not model.built or sample_weight is not None or y is None or model.optimizer is None
            or any(type(a) is not np.ndarray for a in arrays)):
        return forward_backward(model, x, y, sample_weight)[:4]
    variables = model.trainable_weights

    def run(x, y):
        return forward_backward(model, x, y, sample_weight, variables)

    key = (tuple((a.shape, a.dtype.str) for a in arrays), kernels.num_threads(), id(model.optimizer),
           tuple(map(id, variables)))
    programs = model.__dict__.get("_train_programs")
    if programs is None:
        programs = model._train_programs = _Programs()
    state = programs.get(key)
    if type(state) is TrainProgram:
        return state.run(arrays) + (variables,)
    if state is None:  # a key's first step runs as it is; its second is captured
        if len(programs) >= MAX_KEYS:
            programs.pop(next(iter(programs)))
        programs[key] = 1
        return run(x, y)[:4]
    if state is False or not _allowed(model, variables):
        programs[key] = False
        return run(x, y)[:4]
    result, program = _capture(model, x, y, arrays, run)
    programs[key] = program if program is not None else False
    return result + (variables,)


def _as_input_dtypes(model, x):
    """``x`` with float64 arrays cast to float32 where the model's symbolic input is float32: the
    cast the first layer would make in NumPy at every step (Keras's data adapters make it too), made
    before the step so that a captured step reads the batch from its input buffer."""
    leaves = flatten(x)
    if not any(type(a) is np.ndarray and a.dtype == np.float64 for a in leaves):
        return x
    try:
        dtypes = [str(t.dtype) for t in model.inputs]
    except (AttributeError, ValueError):
        return x
    if len(dtypes) != len(leaves):
        return x
    cast = iter([a.astype(np.float32) if type(a) is np.ndarray and a.dtype == np.float64 and d == "float32" else a
                 for a, d in zip(leaves, dtypes)])
    return map_structure(lambda _: next(cast), x)


def _allowed(model, variables):
    from ..training import Trainer

    return (not getattr(model, "run_eagerly", False)
            and type(model).compute_loss is Trainer.compute_loss
            and not model._output_loss_trackers
            and model.__dict__.get("_distribute_strategy") is None
            and all(type(v.value) is np.ndarray for v in model.weights)
            and bool(variables)
            and not model.losses
            and capturable([model]) is True)


def _recorded(run, x, y):
    """``run(x, y)`` with its kernel calls recorded and its state updates kept apart:
    (result, calls, state updates it asked for)."""
    calls, pending = [], []
    outer, _context.pending_updates = getattr(_context, "pending_updates", None), pending
    try:
        with kernels.recording(calls):
            result = run(x, y)
    finally:
        _context.pending_updates = outer
    return result, calls, pending


def _plain(result):
    y_pred, loss, grads, _, unscaled = result
    tensors = flatten(y_pred) + [loss] + list(grads)
    return unscaled and all(type(t) is Tensor and type(t.value) is np.ndarray and t.mask is None for t in tensors)


def _values(result):
    """Copies of the arrays of a ``(y_pred, loss, grads)`` result."""
    return [t.value.copy() for t in flatten(result[:3])]


def _same_bits(result, expected):
    got = flatten(result[:3])
    return len(got) == len(expected) and all(same_bits(t.value, e) for t, e in zip(got, expected))


def _random_states(model):
    """The state of every generator a step may draw from (the global one, and the generators and
    SeedGenerators the layers hold): ``[(generator, state)]``, the global one first."""
    from ..random import SeedGenerator

    found = [(None, _random.generator().bit_generator.state if _random.generator_created() else None)]
    for layer in model._flatten_layers():
        for v in vars(layer).values():
            if isinstance(v, np.random.Generator):
                found.append((v, v.bit_generator.state))
            elif isinstance(v, SeedGenerator):
                found.append((v, v.state.copy()))
    return found


def _put(states):
    """Set the generators of ``_random_states`` to those states."""
    for g, state in states:
        if g is None:
            if state is None:
                _random._generator = None  # made by a step: made again by its next draw
            else:
                _random.generator().bit_generator.state = state
        elif isinstance(g, np.random.Generator):
            g.bit_generator.state = state
        else:
            g.state[...] = state


def _same_states(a, b):
    return len(a) == len(b) and all(
        ga is gb and (sa == sb if not isinstance(sa, np.ndarray) else np.array_equal(sa, sb))
        for (ga, sa), (gb, sb) in zip(a, b))


def _capture(model, x, y, arrays, run):
    """Passes A, B and C of the module docstring: ``(B's result, the program or None)``."""
    perturbed = [_perturbed(a) for a in arrays]
    if any(p is None for p in perturbed):
        return run(x, y)[:3], None
    inputs = [np.array(a, order="C", copy=True) for a in arrays]
    leaves = iter(inputs)
    xb = map_structure(lambda _: next(leaves), x)
    yb = map_structure(lambda _: next(leaves), y)
    weights = [v.value for v in model.weights if v.value.dtype.kind == "f"]
    saved = [w.copy() for w in weights]

    def use(data, perturb):
        """The pass's batch into the input buffers, and the real or the perturbed weights (other
        values, the same signs where >= 0: a variance stays one)."""
        for buffer, a in zip(inputs, data):
            np.copyto(buffer, a)
        for w, s in zip(weights, saved):
            np.copyto(w, s * 1.25 + 0.125 if perturb else s, casting="same_kind")

    before = _random_states(model)
    use(perturbed, True)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # (of the perturbed values)
            warnings.simplefilter("ignore")
            result_a, calls_a, pending_a = _recorded(run, xb, yb)
            expected_a = _values(result_a) if _plain(result_a) else None
    except Exception:  # the perturbed values are not the step's: the step runs as it is
        result_a = expected_a = None
    finally:
        use(arrays, False)
        _put(before)  # B draws what an uncaptured step would
    if expected_a is None or pending_a:
        return run(xb, yb)[:3], None
    result_b, calls_b, pending_b = _recorded(run, xb, yb)
    after = _random_states(model)
    outer = getattr(_context, "pending_updates", None)
    if outer is not None:
        outer.extend(pending_b)  # B is the step: its updates (there are none when A had none) stand
    else:
        for update in pending_b:
            update()
    if pending_b or not _plain(result_b) or not _same_calls(calls_a, calls_b):
        return result_b[:3], None
    # C on the batch (a value A's Python left stale shows) and on A's inputs again (one B's Python
    # left in a buffer that A and B shared shows)
    # (each replay starts from the generators' states before the step: its draws, made by kernel
    # calls, must be B's and leave the generators as B did; a draw made in Python between the
    # kernels would be missing)
    expected_b = _values(result_b)
    program = TrainProgram(inputs, calls_a, result_a[:3])
    _put(before)
    valid = _same_bits(program.run(arrays), expected_b) and _same_states(_random_states(model), after)
    if valid:
        _put(before)
        use(perturbed, True)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                valid = _same_bits(program.run(perturbed), expected_a)
        finally:
            use(arrays, False)
    _put(after)
    return result_b[:3], (program if valid else None)
