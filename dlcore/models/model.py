"""Model: a Layer that trains. ``dl.Model(inputs, outputs)`` makes a functional model;
subclassing ``dl.Model`` with a ``call`` method makes a custom one."""
import numpy as np

from ..autograd import is_recording, no_grad
from ..layers.layer import Layer, _context
from ..tensor import Tensor
from ..training import Trainer


class Model(Trainer, Layer):
    """Keras's Model: functional (``Model(inputs, outputs)``) or subclassed (define ``call``)."""

    _rounds_to_policy = False  # its layers round to their dtype policies, a model adds no casts

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return Functional.__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        trainable = kwargs.pop("trainable", True)
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        if args:
            raise TypeError(f"{type(self).__name__}: unexpected positional arguments {args!r}; "
                            "a functional model is Model(inputs, outputs)")
        Layer.__init__(self, trainable=trainable, name=name, dtype=dtype, **kwargs)
        Trainer.__init__(self)

    @property
    def layers(self):
        return list(self._layers)

    # inference -----------------------------------------------------------------------------------
    def _call_inference(self, x, training):
        """``self(x, training=training)`` through the model's cached inference plan, or None where
        the general call is needed: a recording tape, ``training`` true, an unbuilt model, an input
        the plan does not take (masked, or not an array or Tensor structure)."""
        if training is None:
            training = getattr(_context, "training", None)
        if training or not self.built or self.input_spec is not None or self._makes_mask or is_recording():
            return None
        plan = self._inference_plan()
        if plan is None:
            return None
        if self._activity_losses:
            self._activity_losses.clear()
        if type(x) is np.ndarray:
            out = plan.replayed(x)
            if out is not None:
                return out
        previous = getattr(_context, "training", None)
        _context.training = training
        try:
            return plan.run(self, x, training)
        finally:
            _context.training = previous

    def _replayed(self, x):
        """``predict_on_batch``'s output for ndarray ``x`` when the inference plan has captured a
        call of its shape and dtype (see models/replay.py), else None."""
        if not self.built or self.input_spec is not None or self._makes_mask:
            return None
        plan = self._inference_plan()
        return None if plan is None else plan.replayed(x, True)

    def _casts_integer_inputs(self):
        """Integer data for integer symbolic inputs (token ids) stays integer, as Keras converts data
        to its input's dtype; other integer data becomes floats (the layers' autocast)."""
        try:
            inputs = self.inputs
        except (AttributeError, ValueError):
            return True
        return not (inputs and all(str(t.dtype).startswith(("int", "uint")) for t in inputs))

    def _check_data_shapes(self, data):
        """Raise ValueError when ``data`` (arrays, or a list/dict of them) does not fit the model's
        known input shapes; reads shapes only, so it runs before any copy. A model without a
        symbolic input (subclassed, or not built yet) checks nothing here."""

    def _inference_plan(self):
        """The plan running this model in inference, rebuilt when the model changes; None when
        the model has none (a subclassed model runs its own ``call``)."""
        return None

    def get_layer(self, name=None, index=None):
        """The sublayer called ``name`` (or at ``index``)."""
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Model '{self.name}': layer index {index} out of range; the model has "
                                 f"{len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    def _build_from(self, inputs):
        self.built = True  # sublayers build themselves on this first call
        self._build_input_shape = _shape_struct(inputs)  # saved as build_config (dlcore.saving)

    def build(self, input_shape=None):
        """Create the weights by running the model once on zeros of ``input_shape``."""
        if self.built and self.weights:
            return
        self.built = True
        if input_shape is None:
            return
        self._build_input_shape = _shape_struct(input_shape)

        def zeros(shape):
            return Tensor(np.zeros(tuple(1 if d is None else d for d in shape), dtype=self._float_dtype()))

        from ..layers.layer import _is_shape
        from ..symbolic import map_structure

        data = zeros(input_shape) if _is_shape(input_shape) else map_structure(zeros, input_shape)
        with no_grad():
            self(data, training=False)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the layers with output shapes and parameter counts, then the totals."""
        from ..utils.summary import format_summary

        text = format_summary(self, show_trainable=show_trainable)
        (print_fn or print)(text)

    def get_config(self):
        return Layer.get_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """``Model.from_config`` of a functional config builds a Functional model, as in Keras;
        a subclassed model is ``cls(**config)``."""
        if cls is Model and isinstance(config, dict) and "input_layers" in config and "output_layers" in config:
            from .functional import Functional

            return Functional.from_config(config, custom_objects=custom_objects)
        return cls(**config)

    # saving (implemented in dlcore.saving) -------------------------------------------------------
    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Save the whole model (architecture, weights, compile config, optimizer and random
        state) to a ``.dlc`` file; ``dl.models.load_model`` reads it back."""
        from ..distribute.strategy import is_chief
        from ..saving import save_model

        if not is_chief():  # distributed training: rank 0 writes the file once
            return
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only, to a ``.weights.dlc`` file."""
        from ..distribute.strategy import is_chief
        from ..saving import save_weights

        if not is_chief():
            return
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights from ``save_weights`` (or ``save``) output; the architecture must match."""
        from ..saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def export(self, filepath, format="onnx", verbose=True, **kwargs):
        """Write the model for serving; ``format="onnx"`` (Keras 3's name) writes an ONNX file."""
        if format != "onnx":
            raise ValueError(f"Model.export: unsupported format {format!r}; dlcore exports format='onnx'")
        from ..saving import export_onnx

        return export_onnx(self, filepath, **kwargs)

    def quantize(self, mode=None, config=None, filters=None, calibration_data=None, **kwargs):
        """Quantize the weights of every Dense, EinsumDense, Embedding, Conv1D/Conv2D and
        DepthwiseConv1D/2D layer (Keras 3: ``mode="int8"``: int8 weights with a float32 scale per output
        channel, inputs quantized per row, per sample for convolutions, at call time); layers without
        int8 kernels stay float and are listed in ``self.float_layers``. ``calibration_data`` (a dlcore
        extension): sample inputs from which the convolutions get static input scales, so conv stacks
        run int8 to int8; ``calibration_method="minmax"`` (max |x|, the default) or ``"percentile"``
        (with ``calibration_percentile=99.999``: outliers clip), ONNX Runtime's names (see
        dlcore/quantizers/calibration.py). Convolutions with a GEMM depth (kernel height x width x input
        channels) under ``conv_min_depth=32`` stay float32, where int8 measured slower (0 quantizes them). The quantized model runs
        inference only; it saves and loads."""
        from ..quantizers import quantize_model

        type_check = kwargs.pop("type_check", True)
        depth = {"conv_min_depth": kwargs.pop("conv_min_depth")} if "conv_min_depth" in kwargs else {}
        method = kwargs.pop("calibration_method", None)
        percentile = kwargs.pop("calibration_percentile", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if calibration_data is None and (method is not None or percentile is not None):
            raise ValueError(f"{type(self).__name__} '{self.name}'.quantize: calibration_method and "
                             "calibration_percentile need calibration_data (sample inputs)")
        if calibration_data is not None:
            from ..quantizers.calibration import calibrate

            calibrate(self, mode, calibration_data, method or "minmax", percentile, config=config, filters=filters,
                      type_check=type_check, **depth)
        else:
            quantize_model(self, mode, config=config, filters=filters, type_check=type_check, **depth)

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``dl.models.model_from_json`` rebuilds it)."""
        from ..saving import model_to_json

        return model_to_json(self, **kwargs)


def _shape_struct(x):
    """Input shapes (batch None) of data or of a shape structure, as JSON-able lists."""
    from ..layers.layer import _is_shape

    if hasattr(x, "shape") and not isinstance(x, (list, tuple, dict)):
        return [None] + [int(d) for d in x.shape[1:]]
    if _is_shape(x):
        return [None if d is None else int(d) for d in x]
    if isinstance(x, (list, tuple)):
        return [_shape_struct(v) for v in x]
    if isinstance(x, dict):
        return {k: _shape_struct(v) for k, v in x.items()}
    return None
