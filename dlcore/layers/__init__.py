"""dlcore.layers: Keras 3 layers. Each family lives in its own module, imported on first use of one
of its layers (``dl.layers.LSTM``, or a saved model naming it), so predicting a saved MLP never
imports the recurrent, attention or preprocessing code."""
from .. import registry
from .._lazy import lazy_members
from ..registry import register, registered  # noqa: F401
from .core import Activation, Dense, Identity, Input, InputLayer, Lambda
from .layer import InputSpec, Layer

# the lazily imported layers and functions, by family module
_FAMILIES = {
    "activation": ("ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"),
    "attention": ("AdditiveAttention", "Attention", "EinsumDense", "MultiHeadAttention"),
    "conv": ("Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Convolution1D",
             "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose", "Convolution3D",
             "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
             "SeparableConvolution1D", "SeparableConvolution2D"),
    "embedding": ("Embedding", "Masking"),
    "merging": ("Add", "Average", "Concatenate", "Divide", "Dot", "MatMul", "Maximum", "Minimum", "Multiply", "Subtract", "add",
                "average", "concatenate", "dot", "maximum", "minimum", "multiply", "subtract"),
    "normalization": ("BatchNormalization", "GroupNormalization", "LayerNormalization", "RMSNormalization",
                      "UnitNormalization"),
    "pooling": ("AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
                "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D",
                "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
                "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPool1D", "MaxPool2D",
                "MaxPool3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D"),
    "preprocessing": ("CategoryEncoding", "CenterCrop", "Discretization", "Hashing", "IntegerLookup", "Normalization",
                      "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
                      "RandomTranslation", "RandomZoom", "Rescaling", "Resizing", "StringLookup", "TextVectorization"),
    "recurrent": ("GRU", "LSTM", "RNN", "Bidirectional", "GRUCell", "LSTMCell", "SimpleRNN", "SimpleRNNCell",
                  "StackedRNNCells", "TimeDistributed"),
    "regularization": ("ActivityRegularization", "Dropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D",
                       "SpatialDropout2D"),
    "reshaping": ("Flatten", "Gather", "Permute", "RepeatVector", "Reshape", "Slice"),
    "spatial_reshaping": ("Cropping1D", "Cropping2D", "Cropping3D", "ReflectionPadding2D", "UpSampling1D", "UpSampling2D",
                          "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"),
}
lazy_members(__name__, globals(), {name: module for module, names in _FAMILIES.items() for name in names},
             kind="layer")

__all__ = sorted(["Activation", "Dense", "Identity", "Input", "InputLayer", "Lambda", "InputSpec", "Layer",
                  "serialize", "deserialize"] + [n for names in _FAMILIES.values() for n in names])


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` for a layer."""
    return registry.serialize("layer", layer, base=Layer)


def deserialize(config, custom_objects=None):
    """A layer from ``serialize`` output; only registered (or ``custom_objects``) classes."""
    return registry.deserialize("layer", config, custom_objects, names=False)
