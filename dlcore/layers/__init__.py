"""dlcore.layers: Keras 3 layers. Each family lives in its own module."""
from .. import registry
from ..registry import register, registered
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .attention import AdditiveAttention, Attention, EinsumDense, MultiHeadAttention
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
    return registry.serialize("layer", layer, base=Layer)


def deserialize(config, custom_objects=None):
    """A layer from ``serialize`` output; only registered (or ``custom_objects``) classes."""
    return registry.deserialize("layer", config, custom_objects, names=False)
