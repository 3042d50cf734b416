"""dlcore.ops: differentiable operations, named as in ``keras.ops``.

Every op accepts Tensors, Variables, NumPy arrays and Python numbers and returns a Tensor; under
a GradientTape, ops on watched values are recorded for differentiation.

Op families load on first use of one of their ops (``ops.lstm`` imports ``ops/recurrent.py``);
the families whose module shares a name with one of its ops (conv, dropout, shape) load here, so
that the attribute is always the op, never the submodule.
"""
from .._lazy import lazy_members
from .conv import conv, conv2d_bias_act, conv_transpose, conv_transpose_bias, depthwise_conv, separable_conv
from .core import cast, convert_to_numpy, convert_to_tensor, is_tensor, stop_gradient
from .dropout import dropout
from .shape import (arange, concatenate, expand_dims, eye, flatten, full, getitem, one_hot, ones,
                    ones_like, pad, reshape, shape, split, squeeze, stack, take, transpose, zeros,
                    zeros_like)

_FAMILIES = {
    "attention": ("dot_product_attention",),
    "elementwise": ("elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "log_softmax", "relu",
                    "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh"),
    "embedding": ("embedding_lookup",),
    "gemm": ("dense", "dot", "matmul"),
    "losses": ("categorical_crossentropy", "categorical_hinge", "cosine_similarity", "hinge", "huber",
               "kl_divergence", "log_cosh", "mean_absolute_error", "mean_absolute_percentage_error",
               "mean_squared_error", "mean_squared_logarithmic_error", "poisson",
               "sparse_categorical_crossentropy", "squared_hinge"),
    "indexing": ("take_along_axis", "top_k"),
    "linalg": ("einsum", "tril", "triu"),
    "math": ("abs", "absolute", "add", "bitwise_and", "bitwise_invert", "bitwise_not", "bitwise_or",
             "bitwise_xor", "clip", "cos", "divide", "equal", "exp", "floor_divide", "greater",
             "greater_equal", "less", "less_equal", "log", "log1p", "logical_and", "logical_not",
             "logical_or", "logical_xor", "maximum", "minimum", "mod", "multiply", "negative", "not_equal",
             "power", "reciprocal", "sign", "sin", "sqrt", "square", "subtract", "true_divide", "where"),
    "normalization": ("batch_normalization", "batch_normalization_training", "layer_normalization",
                      "moments", "normalize", "rms_normalization"),
    "pooling": ("average_pool", "conv2d_bias_act_max_pool", "max_pool"),
    "recurrent": ("gru", "lstm", "simple_rnn"),
    "reduce": ("all", "amax", "amin", "any", "argmax", "argmin", "logsumexp", "max", "mean", "min", "norm",
               "std", "sum", "var"),
}
lazy_members(__name__, globals(), {name: module for module, names in _FAMILIES.items() for name in names})

__all__ = sorted([name for name, value in list(globals().items()) if callable(value) and not name.startswith("_")
                  and name != "lazy_members"] + [name for names in _FAMILIES.values() for name in names])
