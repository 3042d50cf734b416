"""Test harnesses shared by every op and layer family (STYLE P14).

- ``check_op_gradients(fn, inputs)``: the GradientTape gradients of an op against central finite
  differences, in float64.
- ``check_layer(layer_cls, init_kwargs, input_shape, expected_output_shape, ...)``: Keras's
  ``run_layer_test``: build on random data, output shapes (concrete, symbolic and
  ``compute_output_shape``), weight counts, the get_config / from_config round trip (also through
  JSON and the layer registry), set_weights errors, finite-difference gradients of a float64 copy
  with respect to its inputs and trainable weights, one ``fit`` step in a functional model, and
  an optional independent NumPy ``reference``.
- ``assert_rejected(model, call, exc, *fragments)``: a call that must fail with ``exc`` naming
  every fragment, and leave the weights and the optimizer's step count as they were.

The oracle is never the code under test: references are written from the formulas in the tests.
"""
import contextlib
import inspect
import json
import threading

import numpy as np
import pytest

import dlcore as dl
from dlcore.layers.layer import Layer

# Float32 forward results against float64 NumPy references.
FLOAT32_TOL = dict(rtol=1e-5, atol=1e-6)


# ---- finite differences ------------------------------------------------------------------------
def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _output_arrays(out):
    return [np.asarray(o.value if isinstance(o, dl.Tensor) else o, dtype=np.float64) for o in _as_list(out)]


def _projections(outputs, seed=1234):
    """Fixed random weights r, one per output: the checked scalar is sum(output * r), so every
    output element contributes with its own factor (a plain sum would hide some errors)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 1.5, size=o.shape) * rng.choice([-1.0, 1.0], size=o.shape) for o in outputs]


def _scalar(outputs, rs):
    return sum(float(np.sum(o * r)) for o, r in zip(outputs, rs))


def _numeric_gradient(evaluate, array, eps):
    """Central differences of ``evaluate()`` with respect to each element of ``array`` (in place)."""
    grad = np.zeros(array.shape, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = evaluate()
        flat[i] = old - eps
        minus = evaluate()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, rtol, atol):
    analytic = np.zeros_like(numeric) if analytic is None else np.asarray(analytic, dtype=np.float64)
    assert analytic.shape == numeric.shape, (
        f"gradient of {name}: shape {analytic.shape}, expected {numeric.shape}")
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                               err_msg=f"gradient of {name}: tape vs central finite differences")


def check_op_gradients(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-7, argnums=None):
    """Check ``dl.GradientTape`` gradients of ``sum(fn(*tensors) * r)`` against central finite
    differences, for each float input (or those in ``argnums``), all in float64.

    ``fn`` takes Tensors and returns a Tensor (or a list/tuple of them, each with its own r).
    Non-float inputs (indices, masks) pass through unchanged and are not differentiated.
    Returns the tape gradients, one per input (None where not checked).
    """
    arrays = []
    for a in inputs:
        a = np.asarray(a)
        arrays.append(np.array(a, dtype=np.float64) if a.dtype.kind == "f" else a)
    if argnums is None:
        argnums = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]

    def run():
        return _output_arrays(fn(*[dl.Tensor(a) for a in arrays]))

    rs = _projections(run())
    tensors = [dl.Tensor(a) for a in arrays]
    with dl.GradientTape() as tape:
        for i in argnums:
            tape.watch(tensors[i])
        out = fn(*tensors)
        loss = None
        for o, r in zip(_as_list(out), rs):
            term = dl.ops.sum(dl.ops.multiply(o, r))
            loss = term if loss is None else dl.ops.add(loss, term)
    grads = tape.gradient(loss, [tensors[i] for i in argnums])
    result = [None] * len(arrays)
    for i, g in zip(argnums, grads):
        g = None if g is None else g.value
        numeric = _numeric_gradient(lambda: _scalar(run(), rs), arrays[i], eps)
        _compare(f"input {i} of {getattr(fn, '__name__', fn)}", g, numeric, rtol, atol)
        result[i] = g
    return result


# ---- layers ------------------------------------------------------------------------------------
def _is_multi(shape):
    return isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple))


def make_inputs(input_shape, dtype="float32", seed=0):
    """Random data of ``input_shape`` (a shape, or a list of shapes for several inputs)."""
    rng = np.random.default_rng(seed)

    def one(shape):
        if np.dtype(dtype).kind in "iu":
            return rng.integers(0, 5, size=shape).astype(dtype)
        if np.dtype(dtype).kind == "b":
            return rng.random(shape) > 0.5
        return rng.standard_normal(shape).astype(dtype)

    return [one(s) for s in input_shape] if _is_multi(input_shape) else one(input_shape)


def _map(fn, x):
    return [fn(a) for a in x] if isinstance(x, list) else fn(x)


def _shapes_of(out):
    return [tuple(o.shape) for o in out] if isinstance(out, (list, tuple)) else tuple(out.shape)


def _values(out):
    return [np.asarray(o.value) for o in out] if isinstance(out, (list, tuple)) else np.asarray(out.value)


def _assert_close(actual, expected, **tol):
    for a, e in zip(_as_list(actual), _as_list(expected)):
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(e, dtype=np.float64), **tol)


def _symbolic_shape(shape):
    return (None,) + tuple(shape[1:])


def _check_config_keys(layer_cls, config):
    """get_config holds the __init__ arguments (Keras omits a None-default one when unset)."""
    params = inspect.signature(layer_cls.__init__).parameters
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        assert name in config or p.default is None, (
            f"{layer_cls.__name__}.get_config() lacks the __init__ argument {name!r}: {sorted(config)}")


def _check_set_weights_errors(layer):
    weights = layer.get_weights()
    if not weights:
        return
    wrong = [np.zeros(w.shape + (2,), dtype=w.dtype) for w in weights]
    try:
        layer.set_weights(wrong)
    except ValueError as e:
        assert layer.name in str(e), f"set_weights error does not name layer {layer.name!r}: {e}"
    else:
        raise AssertionError(f"{type(layer).__name__}.set_weights accepted weights of the wrong shape")
    try:
        layer.set_weights(weights + [weights[0]])
    except ValueError as e:
        assert layer.name in str(e), f"set_weights error does not name layer {layer.name!r}: {e}"
    else:
        raise AssertionError(f"{type(layer).__name__}.set_weights accepted too many weights")
    np.testing.assert_array_equal(layer.get_weights()[0], weights[0])  # a failed call changes nothing


def _fresh(init_kwargs, dtype=None):
    """``init_kwargs`` for one more construction: a layer argument (RNN's cell, a wrapper's layer)
    becomes a fresh copy from its config, so the copies check_layer builds share no weights and
    the float64 copy (``dtype``) is float64 all through."""
    kwargs = dict(init_kwargs)
    for key, value in init_kwargs.items():
        if isinstance(value, Layer):
            config = value.get_config()
            if dtype is not None:
                config["dtype"] = dtype
            kwargs[key] = type(value).from_config(config)
    if dtype is not None:
        kwargs["dtype"] = dtype
    return kwargs


def _check_layer_gradients(layer_cls, init_kwargs, x, weights, eps, rtol, atol):
    """A float64 copy: input and trainable-weight gradients against finite differences."""
    layer = layer_cls(**_fresh(init_kwargs, dtype="float64"))
    x64 = _map(lambda a: np.array(a, dtype=np.float64) if a.dtype.kind == "f" else a, x)
    layer(_map(dl.Tensor, x64), training=False)
    layer.set_weights([np.asarray(w, dtype=np.float64) if w.dtype.kind == "f" else w for w in weights])
    trainable = layer.trainable_weights

    def run():
        return _output_arrays(layer(_map(dl.Tensor, x64), training=False))

    first = run()
    for o in first:
        assert o.dtype == np.float64
    rs = _projections(first)
    tensors = _map(dl.Tensor, x64)
    float_inputs = [t for t in _as_list(tensors) if t.dtype.kind == "f"]
    with dl.GradientTape() as tape:
        tape.watch(float_inputs)
        out = layer(tensors, training=False)
        loss = None
        for o, r in zip(_as_list(out), rs):
            term = dl.ops.sum(dl.ops.multiply(o, r))
            loss = term if loss is None else dl.ops.add(loss, term)
    grads = tape.gradient(loss, float_inputs + list(trainable))
    arrays = [a for a in _as_list(x64) if a.dtype.kind == "f"]
    targets = [(f"{layer_cls.__name__} input {i}", a) for i, a in enumerate(arrays)]
    targets += [(f"{layer_cls.__name__} weight {v.name}", v.value) for v in trainable]
    for (name, array), g in zip(targets, grads):
        numeric = _numeric_gradient(lambda: _scalar(run(), rs), array, eps)
        _compare(name, None if g is None else g.value, numeric, rtol, atol)


def _check_fit_step(layer_cls, init_kwargs, x, weights):
    """One fit step in a functional model (and a Sequential one for single-input layers)."""
    xs = _as_list(x)
    inputs = [dl.Input(shape=a.shape[1:], dtype=a.dtype if a.dtype.kind != "f" else None) for a in xs]
    layer = layer_cls(**_fresh(init_kwargs))
    out = layer(inputs if isinstance(x, list) else inputs[0])
    model = dl.Model(inputs if isinstance(x, list) else inputs[0], out)
    if weights:
        layer.set_weights(weights)
    predicted = model.predict(x, verbose=0)
    targets = _map(lambda a: np.zeros_like(a, dtype=np.float32), predicted)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, targets, epochs=1, batch_size=xs[0].shape[0], verbose=0)
    assert np.isfinite(history.history["loss"][0]), f"{layer_cls.__name__}: fit loss is not finite"
    if not isinstance(x, list):
        seq = dl.Sequential([dl.Input(shape=x.shape[1:], dtype=x.dtype if x.dtype.kind != "f" else None),
                             layer_cls(**_fresh(init_kwargs))])
        seq.compile(optimizer="sgd", loss="mse")
        history = seq.fit(x, targets, epochs=1, batch_size=x.shape[0], verbose=0)
        assert np.isfinite(history.history["loss"][0])


def check_layer(layer_cls, init_kwargs, input_shape, expected_output_shape,
                expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                input_dtype="float32", check_gradients=True, reference=None, reference_tol=None,
                check_fit=True, grad_tol=None, seed=0):
    """Keras's run_layer_test for dlcore; returns (layer, inputs, outputs) for further checks.

    input_shape: a full shape with the batch (or a list of them for a multi-input layer);
    expected_output_shape: the full output shape (or a list); reference(x, weights) -> expected
    output (NumPy, written independently), compared at float32 tolerances (``reference_tol``).
    The gradient check runs on a float64 copy (``dtype="float64"``) at ``training=False``.
    """
    init_kwargs = dict(init_kwargs)
    x = make_inputs(input_shape, input_dtype, seed=seed)

    # 1. build on data: output shape, dtype, weights
    layer = layer_cls(**_fresh(init_kwargs))
    assert not layer.built or not layer.weights
    out = layer(_map(dl.Tensor, x))
    assert layer.built
    assert _shapes_of(out) == (list(map(tuple, expected_output_shape)) if _is_multi(expected_output_shape)
                               else tuple(expected_output_shape)), (
        f"{layer_cls.__name__}: output shape {_shapes_of(out)}, expected {expected_output_shape}")
    if np.dtype(input_dtype).kind == "f":
        for o in _as_list(out):
            assert o.dtype == np.dtype(layer.dtype), f"{layer_cls.__name__}: output dtype {o.dtype}"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{layer_cls.__name__}: {len(layer.trainable_weights)} trainable weights, "
            f"expected {expected_num_trainable_weights}")
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    weights = layer.get_weights()
    values = _values(out)
    if reference is not None:
        _assert_close(values, reference(x, weights), **(reference_tol or FLOAT32_TOL))

    # 2. compute_output_shape (where the layer gives the formula) and a symbolic call
    multi = isinstance(x, list)
    if type(layer).compute_output_shape is not Layer.compute_output_shape:
        shapes = [tuple(s) for s in input_shape] if multi else tuple(input_shape)
        assert _as_tuple(layer.compute_output_shape(shapes)) == _as_tuple(expected_output_shape)
        none_batch = [_symbolic_shape(s) for s in shapes] if multi else _symbolic_shape(shapes)
        expected_none = _map(_symbolic_shape, expected_output_shape) if _is_multi(expected_output_shape) \
            else _symbolic_shape(expected_output_shape)
        assert _as_tuple(layer.compute_output_shape(none_batch)) == _as_tuple(expected_none)
    symbolic_in = [dl.Input(shape=a.shape[1:], dtype=a.dtype) for a in _as_list(x)]
    sym_layer = layer_cls(**_fresh(init_kwargs))
    sym_out = sym_layer(symbolic_in if multi else symbolic_in[0])
    expected_sym = ([_symbolic_shape(s) for s in expected_output_shape] if _is_multi(expected_output_shape)
                    else _symbolic_shape(expected_output_shape))
    assert _shapes_of(sym_out) == expected_sym, (
        f"{layer_cls.__name__}: symbolic output shape {_shapes_of(sym_out)}, expected {expected_sym}")
    model = dl.Model(symbolic_in if multi else symbolic_in[0], sym_out)
    sym_layer.set_weights(weights)
    _assert_close(_as_list(model.predict(x, verbose=0)), _as_list(values), rtol=1e-6, atol=1e-6)

    # 3. config round trips: from_config, through JSON, and through the registry
    config = layer.get_config()
    _check_config_keys(layer_cls, config)
    for key in init_kwargs:
        if key in inspect.signature(layer_cls.__init__).parameters:
            assert key in config, f"{layer_cls.__name__}.get_config() lacks {key!r}"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    json_config = json.loads(json.dumps(config))
    for copy in (clone, layer_cls.from_config(json_config),
                 dl.layers.deserialize(json.loads(json.dumps(dl.layers.serialize(layer))))):
        assert type(copy) is layer_cls
        assert json.loads(json.dumps(copy.get_config())) == json_config
        copy(_map(dl.Tensor, x))
        copy.set_weights(weights)
        _assert_close(_values(copy(_map(dl.Tensor, x))), values, rtol=1e-6, atol=1e-7)

    # 4. set_weights with the wrong shapes or count: a ValueError naming the layer
    _check_set_weights_errors(layer)

    # 5. finite differences on a float64 copy
    if check_gradients:
        tol = dict(eps=1e-6, rtol=1e-5, atol=1e-7, **(grad_tol or {}))
        _check_layer_gradients(layer_cls, init_kwargs, x, weights, **tol)

    # 6. one training step
    if check_fit:
        _check_fit_step(layer_cls, init_kwargs, x, weights)
    return layer, x, out


def _as_tuple(shape):
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return tuple(shape)


# ---- rejected calls ---------------------------------------------------------------------------
def assert_rejected(model, call, exc, *fragments):
    """``call(model)`` raises ``exc`` whose message contains every fragment, and leaves the weights
    (and the optimizer's step count) as they were."""
    before = model.get_weights()
    iterations = int(model.optimizer.iterations) if getattr(model, "optimizer", None) is not None and \
        model.optimizer.built else None
    with pytest.raises(exc) as info:
        call(model)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message: {message}"
    after = model.get_weights()
    assert len(after) == len(before)
    for i, (w, w0) in enumerate(zip(after, before)):
        np.testing.assert_array_equal(w, w0, err_msg=f"weight {i} changed although the call was rejected")
    if iterations is not None:
        assert int(model.optimizer.iterations) == iterations
    return message


def run_in_threads(work, args_list):
    """Run ``work(*args)`` for every ``args`` in args_list, each on its own thread, all at once;
    re-raise the first failure (a failed assertion inside a thread otherwise goes unseen)."""
    errors = []

    def body(*args):
        try:
            work(*args)
        except BaseException as exc:  # pragma: no cover - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=tuple(args)) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@contextlib.contextmanager
def stalled_team_workers(seconds):
    """The thread team (kernels/dl_team.h) with its load guard on, a fresh guard state and workers
    that sleep ``seconds`` after claiming each chunk (as when the OS deschedules them); yields
    the count of jobs the guard had run alone so far. Restores the guard setting and the workers."""
    from dlcore.kernels import _team

    guard = _team.set_load_guard(True)
    _team.resize(1)
    previous = _team.set_late_worker(seconds)
    try:
        yield _team.solo_jobs()
    finally:
        _team.set_late_worker(previous)
        _team.set_load_guard(guard)
        _team.resize(1)
