"""clone_model (Keras 3's keras.models.clone_model): the same architecture with fresh weights.

Each layer is rebuilt by ``clone_function(layer)`` (default: ``type(layer).from_config(
layer.get_config())``, so its weights are initialized anew); a layer used twice in the graph
stays shared in the clone. Sequential and functional models are rebuilt layer by layer; a
subclassed model is ``type(model).from_config(model.get_config())``.
"""
from ..layers.core import InputLayer
from ..layers.layer import Layer
from ..symbolic import KerasTensor, flatten, map_structure
from .functional import Functional
from .sequential import Sequential


def _default_clone(layer):
    return type(layer).from_config(layer.get_config())


def _cloner(clone_function):
    """``clone_function`` applied once per layer (shared layers stay shared), its result checked."""
    if clone_function is not None and not callable(clone_function):
        raise TypeError(f"clone_model: `clone_function` must be callable, received {clone_function!r}")
    fn = clone_function or _default_clone
    cache = {}

    def clone(layer):
        if id(layer) not in cache:
            new = fn(layer)
            if not isinstance(new, Layer):
                raise TypeError(f"clone_model: `clone_function` must return a Layer, received "
                                f"{type(new).__name__} for layer '{layer.name}'")
            cache[id(layer)] = new
        return cache[id(layer)]

    return clone


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False,
                **kwargs):
    """A new model with ``model``'s architecture and freshly initialized weights (copy them with
    ``clone.set_weights(model.get_weights())``). ``clone_function(layer)`` makes each new layer;
    ``input_tensors`` (functional and Sequential) replaces the inputs; ``call_function(layer,
    *args, **kwargs)`` replaces each layer call of a functional model; ``recursive`` clones
    nested Sequential/functional models layer by layer too."""
    from .model import Model

    if kwargs:
        raise ValueError(f"clone_model: unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: expected a dlcore Model, received {type(model).__name__}")
    clone = _cloner(clone_function)
    if recursive:
        inner = clone

        def clone(layer):  # noqa: F811  (nested models are rebuilt with the same rules)
            if isinstance(layer, (Sequential, Functional)):
                return clone_model(layer, clone_function=clone_function, call_function=call_function,
                                   recursive=True)
            return inner(layer)

    if isinstance(model, Sequential):
        return _clone_sequential(model, input_tensors, clone)
    if isinstance(model, Functional) and type(model).call is Functional.call:
        return _clone_functional(model, input_tensors, clone, call_function)
    if input_tensors is not None or clone_function is not None or call_function is not None:
        raise ValueError(f"clone_model: `input_tensors`, `clone_function` and `call_function` need a "
                         f"Sequential or functional model; '{model.name}' is a subclassed "
                         f"{type(model).__name__}, cloned only through its get_config")
    return type(model).from_config(model.get_config())


def _clone_sequential(model, input_tensors, clone):
    layers = [clone(layer) for layer in model.layers]
    if input_tensors is not None:
        inputs = flatten(input_tensors)
        if len(inputs) != 1 or not isinstance(inputs[0], KerasTensor):
            raise ValueError(f"clone_model: a Sequential model takes one input tensor; received "
                             f"{input_tensors!r}")
        x = inputs[0]
        for layer in layers:
            x = layer(x)
        return Functional(inputs[0], x, name=model.name)
    new = Sequential(name=model.name, trainable=model.trainable)
    if model._input_layer is not None:
        new.add(_default_clone(model._input_layer))
    for layer in layers:
        new.add(layer)
    return new


def _clone_functional(model, input_tensors, clone, call_function):
    if input_tensors is None:
        new_inputs = [_default_clone(t.node.layer).output if t.node is not None and
                      isinstance(t.node.layer, InputLayer) else t for t in model._flat_inputs]
    else:
        new_inputs = flatten(input_tensors)
        if len(new_inputs) != len(model._flat_inputs) or not all(isinstance(t, KerasTensor) for t in new_inputs):
            raise ValueError(f"clone_model: `input_tensors` must be {len(model._flat_inputs)} symbolic tensors "
                             f"(dl.Input), one per input of '{model.name}'; received {input_tensors!r}")
    values = {id(old): new for old, new in zip(model._flat_inputs, new_inputs)}

    def swap(a):
        return values[id(a)] if isinstance(a, KerasTensor) else a

    for node in model._nodes:
        layer = clone(node.layer)
        args = map_structure(swap, node.args)
        kwargs = {k: map_structure(swap, v) for k, v in node.kwargs.items()}
        out = call_function(layer, *args, **kwargs) if call_function is not None else layer(*args, **kwargs)
        for old, new in zip(flatten(node.outputs), flatten(out)):
            values[id(old)] = new
    leaves = iter(new_inputs)
    inputs = map_structure(lambda _: next(leaves), model._input_struct)
    outputs = map_structure(swap, model._output_struct)
    return Functional(inputs, outputs, name=model.name)
