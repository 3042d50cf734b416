"""Model: a Layer that trains. ``dl.Model(inputs, outputs)`` makes a functional model;
subclassing ``dl.Model`` with a ``call`` method makes a custom one."""
import numpy as np

from ..autograd import no_grad
from ..layers.layer import Layer
from ..tensor import Tensor
from ..training import Trainer


class Model(Trainer, Layer):
    """Keras's Model: functional (``Model(inputs, outputs)``) or subclassed (define ``call``)."""

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

    def build(self, input_shape=None):
        """Create the weights by running the model once on zeros of ``input_shape``."""
        if self.built and self.weights:
            return
        self.built = True
        if input_shape is None:
            return

        def zeros(shape):
            return Tensor(np.zeros(tuple(1 if d is None else d for d in shape), dtype=self.dtype))

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
