"""Static activation scales for ``model.quantize("int8", calibration_data=x)`` (a dlcore extension;
Keras 3 quantizes activations dynamically only).

The float model runs once over the calibration samples (in batches); each int8 convolution records
the largest |input| it sees (max-abs calibration, no percentile clipping: the digits CNN keeps its
accuracy with it) and gets the static per-tensor scale ``input_scale = 127 / (max|x| + 1e-7)``, Keras's
abs-max rule on the whole calibration set. A calibrated convolution quantizes its inputs with that
scale instead of per sample, and in a Sequential model the inference plan hands int8 straight from one
convolution to the next (dlcore/models/inference.py). Dense, EinsumDense and Embedding keep Keras's
dynamic per-row scheme, so their outputs stay bit-exact with Keras.
"""
import numpy as np

from . import EPSILON, check_mode, quantize_model

BATCH_SIZE = 128


def _check_data(owner, data):
    arrays = data if isinstance(data, (list, tuple)) else list(data.values()) if isinstance(data, dict) else [data]
    for a in arrays:
        shape = np.shape(getattr(a, "value", a))
        if len(shape) < 1 or shape[0] == 0:
            raise ValueError(f"{owner}: calibration_data must hold at least one sample (a batch of model inputs), "
                             f"received an array of shape {shape}")


def _plans(model):
    """Drop the cached inference plans of ``model`` and its nested models (they hold bound calls)."""
    for layer in model._flatten_layers():
        layer.__dict__.pop("_plan", None)


def input_ranges(model, layers, data):
    """{layer: max |input|} of each of ``layers`` while the model predicts ``data``."""
    ranges = {layer: 0.0 for layer in layers}

    def recorder(layer, call):
        def record(inputs, *args, **kwargs):
            a = np.asarray(getattr(inputs, "value", inputs))
            if a.size:
                ranges[layer] = max(ranges[layer], float(np.nanmax(np.abs(a))))
            return call(inputs, *args, **kwargs)
        return record

    _plans(model)
    for layer in layers:
        layer.call = recorder(layer, layer.call)
    try:
        model.predict(data, batch_size=BATCH_SIZE, verbose=0)
    finally:
        for layer in layers:
            del layer.call
        _plans(model)
    return ranges


def calibrate(model, mode, data, **kwargs):
    """``quantize_model`` with static input scales for the int8 convolutions, from ``data``."""
    owner = f"{type(model).__name__} '{model.name}'.quantize"
    check_mode(owner, mode)
    _check_data(owner, data)
    if not model.built:
        raise ValueError(f"{owner}: the model must be built first (call it or build() it)")
    candidates = [layer for layer in model._flatten_layers()
                  if layer is not model and not layer._layers and callable(getattr(layer, "_int8_build", None))
                  and "call" not in layer.__dict__]
    ranges = input_ranges(model, candidates, data)
    left = quantize_model(model, mode, **kwargs)
    for layer, amax in ranges.items():
        if getattr(layer, "quantization_mode", None) is not None and hasattr(layer, "input_scale"):
            layer.input_scale.assign(np.float32(127.0) / (np.float32(amax) + np.float32(EPSILON)))
    _plans(model)
    return left
