"""Static activation scales for ``model.quantize("int8", calibration_data=x)`` (a dlcore extension;
Keras 3 quantizes activations dynamically only).

The float model runs over the calibration samples (in batches) and each int8 convolution records what
its inputs hold. ``calibration_method`` (ONNX Runtime's ``CalibrationMethod`` names):

- ``"minmax"`` (default): the largest |input| seen, so nothing clips (the digits CNN keeps its accuracy).
- ``"percentile"``: the ``calibration_percentile``-th percentile (default 99.999, ORT's ``CalibPercentile``)
  of |input| over every calibration value, read as ORT's symmetric percentile calibrator does: a second
  pass fills a 2048-bin histogram of |input| over [0, max], and the range is the left edge of the bin
  where the cumulative share reaches the percentile. Rare outliers then saturate at +-127 instead of
  stretching the scale, which keeps resolution for the bulk of the values.

The static per-tensor scale is ``input_scale = 127 / (range + 1e-7)``, Keras's abs-max rule applied to the
range. A calibrated convolution quantizes its inputs with that scale instead of per sample, and in a
Sequential model the inference plan hands int8 straight from one convolution to the next
(dlcore/models/inference.py). Dense, EinsumDense and Embedding keep Keras's dynamic per-row scheme, so
their outputs stay bit-exact with Keras.
"""
import numpy as np

from . import EPSILON, check_mode, quantize_model

BATCH_SIZE = 128
METHODS = ("minmax", "percentile")
DEFAULT_PERCENTILE = 99.999  # ONNX Runtime's CalibPercentile default
NUM_BINS = 2048  # ONNX Runtime's histogram calibrators' default


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


def _observe(model, layers, data, see):
    """Predict ``data`` with the float model, calling ``see(layer, |inputs|)`` on each of ``layers``' inputs."""
    def recorder(layer, call):
        def record(inputs, *args, **kwargs):
            a = np.asarray(getattr(inputs, "value", inputs))
            if a.size:
                see(layer, np.abs(a))
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


def input_ranges(model, layers, data, method="minmax", percentile=DEFAULT_PERCENTILE):
    """{layer: the calibrated range of |input|} of each of ``layers`` while the model predicts ``data``:
    the max (``"minmax"``) or the ``percentile``-th percentile from a histogram (``"percentile"``)."""
    ranges = {layer: 0.0 for layer in layers}

    def see_max(layer, a):
        ranges[layer] = max(ranges[layer], float(np.nanmax(a)))

    _observe(model, layers, data, see_max)
    if method == "minmax":
        return ranges
    counts = {layer: np.zeros(NUM_BINS, np.int64) for layer in layers}

    def see_histogram(layer, a):
        if ranges[layer] > 0:
            counts[layer] += np.histogram(a, bins=NUM_BINS, range=(0.0, ranges[layer]))[0]

    _observe(model, layers, data, see_histogram)
    for layer, hist in counts.items():
        if hist.sum():
            edges = np.linspace(0.0, ranges[layer], NUM_BINS + 1)
            cdf = np.cumsum(hist) / hist.sum()
            ranges[layer] = float(edges[min(int(np.searchsorted(cdf, percentile / 100.0)), NUM_BINS)])
    return ranges


def check_method(owner, method, percentile):
    """ValueError unless ``method`` is a calibration method and ``percentile`` fits it."""
    if method not in METHODS:
        raise ValueError(f"{owner}: invalid calibration_method. Expected one of {list(METHODS)}. "
                         f"Received: calibration_method={method!r}")
    if percentile is None:
        return
    if method != "percentile":
        raise ValueError(f"{owner}: calibration_percentile applies to calibration_method='percentile' only. "
                         f"Received: calibration_method={method!r}, calibration_percentile={percentile!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)) \
            or not 0 < percentile <= 100:
        raise ValueError(f"{owner}: calibration_percentile must be a number in (0, 100]. "
                         f"Received: calibration_percentile={percentile!r}")


def calibrate(model, mode, data, method="minmax", percentile=None, **kwargs):
    """``quantize_model`` with static input scales for the int8 convolutions, from ``data`` (``method``
    and ``percentile``: see the module docstring)."""
    owner = f"{type(model).__name__} '{model.name}'.quantize"
    check_mode(owner, mode)
    check_method(owner, method, percentile)
    _check_data(owner, data)
    if not model.built:
        raise ValueError(f"{owner}: the model must be built first (call it or build() it)")
    candidates = [layer for layer in model._flatten_layers()
                  if layer is not model and not layer._layers and callable(getattr(layer, "_int8_build", None))
                  and "call" not in layer.__dict__]
    ranges = input_ranges(model, candidates, data, method, DEFAULT_PERCENTILE if percentile is None else percentile)
    left = quantize_model(model, mode, **kwargs)
    for layer, amax in ranges.items():
        if getattr(layer, "quantization_mode", None) is not None and hasattr(layer, "input_scale"):
            layer.input_scale.assign(np.float32(127.0) / (np.float32(amax) + np.float32(EPSILON)))
    _plans(model)
    return left
