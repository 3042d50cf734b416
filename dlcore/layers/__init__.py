"""dlcore.layers: Keras 3 layers. Each family lives in its own module."""
from ..registry import lookup, register, registered
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .conv import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, DepthwiseConv1D, DepthwiseConv2D,
                   SeparableConv1D, SeparableConv2D)
from .core import Activation, Dense, Identity, Input, InputLayer, Lambda
from .embedding import Embedding, Masking
from .layer import InputSpec, Layer
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, dot, maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .recurrent import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell,
                        TimeDistributed)
from .regularization import (ActivityRegularization, Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D)
from .reshaping import Flatten, Permute, RepeatVector, Reshape
from .reshaping2d import Cropping2D, ReflectionPadding2D, UpSampling2D, ZeroPadding2D


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` for a layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """A layer from ``serialize`` output; only registered (or ``custom_objects``) classes."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"layers.deserialize expects {{'class_name': ..., 'config': ...}}, received {config!r}")
    cls = lookup("layer", config["class_name"], custom_objects)
    inner = dict(config.get("config", {}))
    if hasattr(cls.from_config, "__func__") and "custom_objects" in cls.from_config.__code__.co_varnames:
        return cls.from_config(inner, custom_objects=custom_objects)
    return cls.from_config(inner)
