"""Captured inference calls: once a planned call of an input shape runs from its arena, the plan
records the kernel calls of that call and later calls of the shape run those calls alone, as a
traced predict function runs its graph in Keras (and as CUDA graphs replay their launches): no
layer, op or plan Python between the kernels.

A capture is two recorded calls and a check (:func:`capture`):

1. call A on a perturbed copy of the input, call B on the input itself, both on the arena, every
   kernel that ``kernels.get`` hands out recording ``(kernel, args)``;
2. A and B must make the same kernel calls with the same scalars and the same arrays, except for
   arrays allocated during the call (temporaries), which must pair one to one with the same
   shapes; every kernel returns None (Python reads no kernel result);
3. replaying A's calls on the input must reproduce B's output bit for bit. Work done in Python
   between the kernels on values that depend on the input (a NumPy temporary, a value-dependent
   branch) leaves A's stale values in the replay and fails this check.

Models whose layers (and the functions they hold) are all dlcore's capture on any call; a model
with a custom layer, a Lambda or a Python activation captures only inside ``predict`` and
``predict_on_batch``, as Keras runs those from a traced function: ``model(x)`` runs their Python
every call. A capture waits for two calls in a row with no variable written, and stays valid while
no variable changes through ``assign`` or an optimizer (``Variable.epoch``) and the thread count
stays; then the next steady calls capture again, so a loop that trains between predicts never pays
for a capture. The input is copied into the program's own buffer and the output copied out, so a
caller never holds memory a later call overwrites (``predict_on_batch`` takes a one-output
program's copy as the array itself: the wrappers around it were 2-3 us of a 30 us batch-1 MLP
predict).
"""
import functools
import types

import numpy as np

from .. import kernels
from ..ops.core import allocator
from ..symbolic import flatten, map_structure
from ..tensor import Tensor, Variable


class Program:
    """The kernel calls of a captured call: ``run(arrays)`` copies the input arrays into the
    program's input buffers, makes the calls and returns copies of the output structure."""

    __slots__ = ("inputs", "calls", "output", "single", "epoch", "threads")

    def __init__(self, inputs, calls, output):
        self.inputs = inputs
        self.calls = replayable(calls)
        self.output = output
        self.single = output.value if type(output) is Tensor else None
        self.epoch, self.threads = Variable.epoch, kernels.num_threads()

    def valid(self):
        return self.epoch == Variable.epoch and self.threads == kernels.num_threads()

    def run(self, arrays, raw=False):
        """The output structure of Tensors; raw: a one-output program's array itself."""
        for buffer, a in zip(self.inputs, arrays):
            np.copyto(buffer, a)
        for fn, args in self.calls:
            fn(*args)
        if self.single is not None:
            return self.single.copy() if raw else Tensor(self.single.copy())
        return _copies(self.output)


def same_bits(a, b):
    """Whether two arrays hold the same dtype, shape and bytes."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def replayable(calls):
    """Recorded ``(kernel, args, kwargs, result)`` calls as ``(callable, args)`` pairs."""
    return [(fn if not kwargs else functools.partial(fn, **kwargs), args) for fn, args, kwargs, _ in calls]


def capturable(layers):
    """True when every layer (and every layer and function they hold) is dlcore's own, so that their
    Python does nothing a captured call would skip besides computing kernel arguments; "predict"
    when some are not (captured inside predict only); False when a layer makes a mask from the
    input's values (Embedding(mask_zero=True), Masking, a custom ``compute_mask``): the mask is
    computed in Python, and an input whose mask a perturbation keeps (no padding) would capture a
    mask that later inputs do not have."""
    seen, found = set(), {"foreign": False, "masks": False}

    def walk(obj, depth):
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            found["foreign"] |= obj.__module__ is None or not obj.__module__.startswith("dlcore.")
            return
        if isinstance(obj, (list, tuple)):
            for o in obj:
                walk(o, depth + 1)
            return
        if isinstance(obj, dict):
            for o in obj.values():
                walk(o, depth + 1)
            return
        module = type(obj).__module__
        if hasattr(obj, "call") and hasattr(obj, "built"):  # a layer
            own = module.startswith("dlcore.") and type(obj).__name__ != "Lambda"
            found["foreign"] |= not own
            found["masks"] |= (getattr(obj, "mask_zero", False) is True or type(obj).__name__ == "Masking"
                               or (not own and getattr(obj, "_makes_mask", False)))
            for o in vars(obj).values():
                walk(o, depth + 1)
        elif callable(obj) and not isinstance(obj, type):
            if module.startswith("dlcore."):  # activations, initializers, ...
                for o in getattr(obj, "__dict__", {}).values():
                    walk(o, depth + 1)
            else:
                found["foreign"] |= not (module in ("builtins", "functools") or module.startswith("numpy"))

    for layer in layers:
        walk(layer, 0)
    if found["masks"]:
        return False
    return "predict" if found["foreign"] else True


def _perturbed(a):
    """A copy of ``a`` with other values of the same kind (None when it has none to offer): floats
    scaled and shifted; integers moved one place and every third one zero (a valid id, and one that
    padding checks and lookups treat apart); booleans moved and every third one flipped."""
    if a.dtype.kind == "f":
        return (a * -1.5 + 0.375).astype(a.dtype)
    if a.dtype.kind not in "iub" or a.size < 2:
        return None
    p = np.roll(a.reshape(-1), 1)
    p[::3] = ~p[::3] if a.dtype.kind == "b" else 0
    p = p.reshape(a.shape)
    return None if np.array_equal(p, a) else p


def _recorded(arena, steps, inputs, args):
    """``steps`` on ``inputs`` from ``arena`` with its kernel calls recorded: (output, calls, clean)."""
    calls = []
    arena.next, arena.missed = 0, False
    allocator.arena = arena
    try:
        with kernels.recording(calls):
            out = steps(None, inputs, *args)
    finally:
        allocator.arena = None
    return out, calls, not arena.missed and arena.next == arena.count


def _layout(a):
    return a.__array_interface__["data"][0], a.shape, a.strides, a.dtype


def _same_calls(calls_a, calls_b):
    """Whether two recorded calls match: the same kernels and scalars, the same arrays or, for arrays
    made during the call, temporaries that pair one to one."""
    if len(calls_a) != len(calls_b):
        return False
    pairs = {}

    def same(x, y):
        if type(x) is not type(y):
            return False
        if type(x) is np.ndarray:
            if _layout(x) == _layout(y):
                return True
            if x.shape != y.shape or x.strides != y.strides or x.dtype != y.dtype:
                return False
            return pairs.setdefault(_layout(x)[0], _layout(y)[0]) == _layout(y)[0]
        if type(x) in (list, tuple):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        if type(x) is dict:
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        try:
            return bool(x == y)
        except Exception:  # an object without a plain equality
            return False

    for (fa, args_a, kw_a, ra), (fb, args_b, kw_b, rb) in zip(calls_a, calls_b):
        if fa is None or fa is not fb or ra is not None or rb is not None:
            return False
        if not same(args_a, args_b) or not same(kw_a, kw_b):
            return False
    return len(set(pairs.values())) == len(pairs)


def _copies(out):
    return map_structure(lambda t: Tensor(t.value.copy()), out)


def _plain_output(out):
    return all(type(t) is Tensor and type(t.value) is np.ndarray and t.mask is None for t in flatten(out))


def capture(arena, steps, arrays, args):
    """``steps``' output for ``arrays`` (copies), and the Program replaying it or None (see the
    module docstring); ``arena`` is this input key's clean arena."""
    perturbed = [_perturbed(a) for a in arrays]
    if any(p is None for p in perturbed):
        return None, None
    inputs = [np.array(a, order="C", copy=True) for a in arrays]
    arena.held = {}  # the buffers the output lives in stay the same through the capture
    try:
        for buffer, p in zip(inputs, perturbed):
            np.copyto(buffer, p)
        out_a, calls_a, clean_a = _recorded(arena, steps, inputs, args)
        for buffer, a in zip(inputs, arrays):
            np.copyto(buffer, a)
        out_b, calls_b, clean_b = _recorded(arena, steps, inputs, args)
    finally:
        arena.held = None
    if not _plain_output(out_b):
        return out_b, None
    result = _copies(out_b)
    if not (clean_a and clean_b and _plain_output(out_a) and _same_calls(calls_a, calls_b)):
        return result, None
    program = Program(inputs, calls_a, out_a)
    replayed = program.run(arrays)
    if all(same_bits(r.value, t.value) for r, t in zip(flatten(replayed), flatten(result))):
        return result, program
    return result, None
