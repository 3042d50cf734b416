"""dlcore.layers: Keras 3 layers. Each family lives in its own module."""
from .. import registry
from ..registry import register, registered
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .attention import AdditiveAttention, Attention, EinsumDense, MultiHeadAttention
from .conv import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Convolution1D, Convolution1DTranspose,
                   Convolution2D, Convolution2DTranspose, Convolution3D, DepthwiseConv1D, DepthwiseConv2D,
                   SeparableConv1D, SeparableConv2D, SeparableConvolution1D, SeparableConvolution2D)
from .core import Activation, Dense, Identity, Input, InputLayer, Lambda
from .embedding import Embedding, Masking
from .layer import InputSpec, Layer
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, dot, maximum, minimum, multiply, subtract)
from .normalization import (BatchNormalization, GroupNormalization, LayerNormalization, RMSNormalization,
                            UnitNormalization)
from .pooling import (AveragePooling1D, AveragePooling2D, AveragePooling3D, AvgPool1D, AvgPool2D, AvgPool3D,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D, MaxPool1D, MaxPool2D, MaxPool3D,
                      MaxPooling1D, MaxPooling2D, MaxPooling3D)
from .preprocessing import (CategoryEncoding, CenterCrop, Discretization, Hashing, IntegerLookup, Normalization,
                            RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                            RandomTranslation, RandomZoom, Rescaling, Resizing, StringLookup)
from .preprocessing import TextVectorization
from .recurrent import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell,
                        StackedRNNCells, TimeDistributed)
from .regularization import (ActivityRegularization, Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D)
from .reshaping import Flatten, Permute, RepeatVector, Reshape
from .spatial_reshaping import (Cropping1D, Cropping2D, Cropping3D, ReflectionPadding2D, UpSampling1D, UpSampling2D,
                                UpSampling3D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D)


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` for a layer."""
    return registry.serialize("layer", layer, base=Layer)


def deserialize(config, custom_objects=None):
    """A layer from ``serialize`` output; only registered (or ``custom_objects``) classes."""
    return registry.deserialize("layer", config, custom_objects, names=False)
