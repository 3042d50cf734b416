"""dlcore.ops: differentiable operations, named as in ``keras.ops``.

Every op accepts Tensors, Variables, NumPy arrays and Python numbers and returns a Tensor; under
a GradientTape, ops on watched values are recorded for differentiation.
"""
from .attention import dot_product_attention
from .conv import conv, conv2d_bias_act, conv_transpose, depthwise_conv, separable_conv
from .core import cast, convert_to_numpy, convert_to_tensor, is_tensor, stop_gradient
from .dropout import dropout
from .elementwise import (elu, exponential, gelu, hard_sigmoid, leaky_relu, log_softmax, relu, relu6,
                          selu, sigmoid, silu, softmax, softplus, softsign, swish, tanh)
from .embedding import embedding_lookup
from .gemm import dense, dot, matmul
from .losses import (categorical_crossentropy, categorical_hinge, cosine_similarity, hinge, huber,
                     kl_divergence, log_cosh, mean_absolute_error, mean_absolute_percentage_error,
                     mean_squared_error, mean_squared_logarithmic_error, poisson,
                     sparse_categorical_crossentropy, squared_hinge)
from .indexing import take_along_axis, top_k
from .linalg import einsum, tril, triu
from .math import (abs, absolute, add, bitwise_and, bitwise_invert, bitwise_not, bitwise_or, bitwise_xor, clip,
                   cos, divide, equal, exp, floor_divide, greater, greater_equal, less, less_equal, log, log1p,
                   logical_and, logical_not, logical_or, logical_xor, maximum, minimum, mod, multiply, negative,
                   not_equal, power, reciprocal, sign, sin, sqrt, square, subtract, true_divide, where)
from .normalization import (batch_normalization, batch_normalization_training, layer_normalization, moments,
                            normalize, rms_normalization)
from .pooling import average_pool, max_pool
from .recurrent import gru, lstm, simple_rnn
from .reduce import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, norm, std, sum, var
from .shape import (arange, concatenate, expand_dims, eye, flatten, full, getitem, one_hot, ones,
                    ones_like, pad, reshape, shape, split, squeeze, stack, take, transpose, zeros,
                    zeros_like)
