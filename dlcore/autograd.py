"""Reverse-mode automatic differentiation: Function, the recorded graph, GradientTape.

An op is a :class:`Function` subclass with ``forward(ctx, *arrays, **attrs)`` and
``backward(ctx, dy, needs)``. ``Function.apply`` runs the forward on NumPy arrays and, while a
tape is recording and some input needs a gradient, records a :class:`Node` that points at the
inputs. ``GradientTape.gradient`` walks the nodes from the target in reverse topological order,
accumulating gradients with ``+``, and asks each backward only for the inputs that need one.
"""
import threading

import numpy as np

from . import devices, kernels
from ._tree import flatten as _flatten, map_structure
from .tensor import Tensor, Variable


class _State(threading.local):
    def __init__(self):
        self.tapes = []  # active (recording) tapes, innermost last
        self.no_grad = 0


_state = _State()


class Context:
    """What a forward keeps for its backward: ``ctx.save(*arrays)`` and plain attributes."""

    __slots__ = ("saved", "__dict__")

    def save(self, *arrays):
        self.saved = arrays


class Node:
    """One recorded application of a Function."""

    __slots__ = ("function", "ctx", "inputs", "needs", "n_outputs")

    def __init__(self, function, ctx, inputs, needs, n_outputs):
        self.function = function
        self.ctx = ctx
        self.inputs = inputs
        self.needs = needs
        self.n_outputs = n_outputs


def is_recording():
    return bool(_state.tapes) and not _state.no_grad


def _needs_grad(x):
    if not isinstance(x, Tensor):
        return False
    if x.node is not None:
        return True
    key = id(x)
    if isinstance(x, Variable) and x.trainable:
        return any(tape._watch_accessed or key in tape._watched for tape in _state.tapes)
    return any(key in tape._watched for tape in _state.tapes)


def _value(x):
    return x.value if isinstance(x, Tensor) else x


def _refuse_gpu_arrays(cls, arrays):
    if any(isinstance(a, devices.ARRAY_TYPES) for a in arrays):
        raise TypeError(f"op {cls.__name__} received a GPU array but runs on the CPU only (README, GPU, lists "
                        "the layers, ops, losses and optimizers that run on the GPU)")


class Function:
    """Base class of differentiable ops.

    forward(ctx, *arrays, **attrs) -> ndarray (or tuple of ndarrays when n_outputs > 1)
    backward(ctx, dy, needs) -> one gradient (ndarray or None) per positional input; ``dy`` is
    a tuple when n_outputs > 1, with zeros for outputs that received no gradient.
    """

    n_outputs = 1
    runs_on_gpu = False  # True where forward and backward dispatch on GPU (numba device) arrays

    @classmethod
    def apply(cls, *inputs, **attrs):
        ctx = Context()
        arrays = [x.value if isinstance(x, Tensor) else x for x in inputs]
        if devices.ARRAY_TYPES and not cls.runs_on_gpu:  # empty tuple until a GPU is chosen
            _refuse_gpu_arrays(cls, arrays)
        out = cls.forward(ctx, *arrays, **attrs)
        node = None
        state = _state
        if state.tapes and not state.no_grad:
            needs = tuple(_needs_grad(x) for x in inputs)
            if any(needs):
                node = Node(cls, ctx, inputs, needs, cls.n_outputs)
        if cls.n_outputs == 1:
            return Tensor(out, node, 0)
        if node is not None:
            ctx.outputs_like = out
        return tuple(Tensor(o, node, i) for i, o in enumerate(out))


class no_grad:
    """Context manager: ops run without recording, as in inference."""

    def __enter__(self):
        _state.no_grad += 1
        return self

    def __exit__(self, *exc):
        _state.no_grad -= 1
        return False


def _topological_order(roots):
    order, seen = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for x, need in zip(node.inputs, node.needs):
            if need and x.node is not None and id(x.node) not in seen:
                stack.append((x.node, False))
    return order  # inputs before the nodes that use them


def _add(a, b):
    """a + b for gradients; GPU arrays (which have no arithmetic operators) add on the device. Two
    float arrays of one shape add by a kernel (the same additions; a captured training step of a
    model with a skip connection makes them again at every replay)."""
    if isinstance(a, devices.ARRAY_TYPES) or isinstance(b, devices.ARRAY_TYPES):
        from .ops.core import device_sum

        return device_sum([devices.to_device(a), devices.to_device(b)])
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype
            and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and b.flags.c_contiguous and a.size):
        out = np.empty_like(a)
        kernels.get("add_forward")(a.reshape(-1), b.reshape(-1), out.reshape(-1), kernels.threads_for(a.size))
        return out
    return a + b


def _accumulate(table, key, grad):
    old = table.get(key)
    table[key] = grad if old is None else _add(old, grad)


def backpropagate(targets, target_grads, sources):
    """Gradients of sum(target * target_grad) with respect to each source (None if unconnected)."""
    node_grads = {}  # id(node) -> [grad per output]
    leaf_grads = {}  # id(tensor) -> grad
    roots = []
    for t, g in zip(targets, target_grads):
        if t.node is None:
            _accumulate(leaf_grads, id(t), g)
            continue
        slots = node_grads.setdefault(id(t.node), [None] * t.node.n_outputs)
        slots[t.index] = g if slots[t.index] is None else _add(slots[t.index], g)
        roots.append(t.node)

    wanted = {}  # (id(node), index) -> grad, for sources that are op outputs
    source_keys = {(id(s.node), s.index) for s in sources if s.node is not None}

    for node in reversed(_topological_order(roots)):
        grads = node_grads.pop(id(node), None)
        if grads is None:
            continue
        for i, g in enumerate(grads):
            if (id(node), i) in source_keys and g is not None:
                wanted[(id(node), i)] = g
        if node.n_outputs == 1:
            dy = grads[0]
        else:
            dy = tuple(g if g is not None else devices.zeros_like(node.ctx.outputs_like[i])
                       for i, g in enumerate(grads))
        input_grads = node.function.backward(node.ctx, dy, node.needs)
        for x, need, gx in zip(node.inputs, node.needs, input_grads):
            if not need or gx is None:
                continue
            if x.node is None:
                _accumulate(leaf_grads, id(x), gx)
            else:
                slots = node_grads.setdefault(id(x.node), [None] * x.node.n_outputs)
                slots[x.index] = gx if slots[x.index] is None else _add(slots[x.index], gx)

    result = []
    for s in sources:
        if s.node is None:
            result.append(leaf_grads.get(id(s)))
        else:
            result.append(wanted.get((id(s.node), s.index)))
    return result


class GradientTape:
    """Records differentiable ops for reverse-mode differentiation (TensorFlow semantics).

    Trainable variables are watched automatically (``watch_accessed_variables=True``); other
    tensors are watched with :meth:`watch`. A non-persistent tape gives one ``gradient`` call.
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = persistent
        self._watch_accessed = watch_accessed_variables
        self._watched = {}
        self._recording = False
        self._used = False

    def __enter__(self):
        _state.tapes.append(self)
        self._recording = True
        return self

    def __exit__(self, *exc):
        if self._recording:
            _state.tapes.remove(self)
            self._recording = False
        return False

    def watch(self, tensor):
        """Watch a tensor (or a nested list of tensors) so gradients can be taken with respect to it."""
        for t in _flatten(tensor):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch expects Tensors or Variables, received {type(t).__name__}")
            self._watched[id(t)] = t

    def watched_variables(self):
        return [t for t in self._watched.values() if isinstance(t, Variable)]

    def stop_recording(self):
        return _StopRecording(self)

    def reset(self):
        self._watched.clear()
        self._used = False

    def gradient(self, target, sources, output_gradients=None):
        """d target / d sources; ``sources`` may be one tensor or a (nested) list of them."""
        if self._used and not self.persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one set of "
                               "gradients; create it with persistent=True for more.")
        self._used = True
        targets = _flatten(target)
        if output_gradients is None:
            target_grads = [np.ones_like(np.asarray(t.value if isinstance(t, Tensor) else t)) for t in targets]
        else:
            target_grads = [np.asarray(_value(g)) for g in _flatten(output_gradients)]
        targets = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in targets]
        flat_sources = _flatten(sources)
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient sources must be Tensors or Variables, "
                                f"received {type(s).__name__}")
        grads = backpropagate(targets, target_grads, flat_sources)
        grads = [None if g is None else Tensor(g if devices.is_device_array(g) else np.asarray(g, dtype=s.dtype))
                 for g, s in zip(grads, flat_sources)]
        leaves = iter(grads)
        return map_structure(lambda _: next(leaves), sources)

    def _one_output_at_a_time(self, target, sources, what):
        """``(target, flat sources, backward(one_hot) -> grads)`` for the Jacobians."""
        if self._used and not self.persistent:
            raise RuntimeError(f"A non-persistent GradientTape can only be used to compute one set of "
                               f"gradients; create it with persistent=True to call {what} after another call.")
        self._used = True
        if not isinstance(target, Tensor):
            raise TypeError(f"GradientTape.{what}: `target` must be a Tensor, received {type(target).__name__}")
        flat_sources = _flatten(sources)
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.{what}: sources must be Tensors or Variables, "
                                f"received {type(s).__name__}")

        def backward(seed):
            return backpropagate([target], [seed], flat_sources)

        return flat_sources, backward

    def jacobian(self, target, sources, unconnected_gradients=None, parallel_iterations=None,
                 experimental_use_pfor=True):
        """d target[i...] / d source[j...] for every pair: per source, an array of shape
        ``target.shape + source.shape`` (None where the source does not reach the target), in the
        structure of ``sources``; zeros there with ``unconnected_gradients="zero"``. One backward
        pass per element of ``target`` (``parallel_iterations`` and ``experimental_use_pfor`` are
        accepted, as TensorFlow's, and change nothing)."""
        flat_sources, backward = self._one_output_at_a_time(target, sources, "jacobian")
        out_shape = target.value.shape
        size = int(np.prod(out_shape))
        jac = [np.zeros((size,) + s.value.shape, dtype=s.value.dtype) for s in flat_sources]
        connected = [False] * len(flat_sources)
        seed = np.zeros(size, dtype=target.value.dtype)
        for i in range(size):
            seed[i] = 1
            for k, g in enumerate(backward(seed.reshape(out_shape))):
                if g is not None:
                    jac[k][i] = g
                    connected[k] = True
            seed[i] = 0
        zero = _zero_if_unconnected(unconnected_gradients, "jacobian")
        result = [Tensor(j.reshape(out_shape + s.value.shape)) if c or zero else None
                  for j, s, c in zip(jac, flat_sources, connected)]
        leaves = iter(result)
        return map_structure(lambda _: next(leaves), sources)

    def batch_jacobian(self, target, source, unconnected_gradients=None, parallel_iterations=None,
                       experimental_use_pfor=True):
        """Per sample b, d target[b, i...] / d source[b, j...]: shape ``(batch,) + target.shape[1:]
        + source.shape[1:]``, for a target whose sample b depends only on the source's sample b
        (one backward pass per element of a sample of ``target``)."""
        if not isinstance(source, Tensor):
            raise TypeError(f"GradientTape.batch_jacobian: `source` must be a Tensor, received "
                            f"{type(source).__name__}")
        (src,), backward = self._one_output_at_a_time(target, [source], "batch_jacobian")
        t_shape, s_shape = target.value.shape, src.value.shape
        if len(t_shape) < 1 or len(s_shape) < 1 or t_shape[0] != s_shape[0]:
            raise ValueError(f"GradientTape.batch_jacobian: target and source must share their first (batch) "
                             f"dimension; received target of shape {t_shape} and source of shape {s_shape}")
        batch, per_sample = t_shape[0], int(np.prod(t_shape[1:]))
        jac = np.zeros((batch, per_sample) + s_shape[1:], dtype=src.value.dtype)
        seed = np.zeros((batch, per_sample), dtype=target.value.dtype)
        for i in range(per_sample):
            seed[:, i] = 1
            (g,) = backward(seed.reshape(t_shape))
            if g is None:
                if _zero_if_unconnected(unconnected_gradients, "batch_jacobian"):
                    return Tensor(jac.reshape(t_shape + s_shape[1:]))
                return None
            jac[:, i] = g
            seed[:, i] = 0
        return Tensor(jac.reshape(t_shape + s_shape[1:]))


def _zero_if_unconnected(unconnected_gradients, what):
    """TensorFlow's ``unconnected_gradients``: "none" (None, the default) or "zero" (zeros)."""
    mode = getattr(unconnected_gradients, "value", unconnected_gradients) or "none"
    if str(mode).lower() not in ("none", "zero"):
        raise ValueError(f"GradientTape.{what}: `unconnected_gradients` must be 'none' or 'zero', "
                         f"received {unconnected_gradients!r}")
    return str(mode).lower() == "zero"


class _StopRecording:
    def __init__(self, tape):
        self.tape = tape

    def __enter__(self):
        _state.tapes.remove(self.tape)

    def __exit__(self, *exc):
        _state.tapes.append(self.tape)
        return False
