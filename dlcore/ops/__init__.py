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
from .gemm import dense, dot, matmul
from .losses import (categorical_crossentropy, categorical_hinge, cosine_similarity, hinge, huber,
                     kl_divergence, log_cosh, mean_absolute_error, mean_absolute_percentage_error,
                     mean_squared_error, mean_squared_logarithmic_error, poisson,
                     sparse_categorical_crossentropy, squared_hinge)
from .math import (abs, absolute, add, clip, cos, divide, exp, log, log1p, maximum, minimum, multiply,
                   negative, power, reciprocal, sign, sin, sqrt, square, subtract, true_divide, where)
# .norm (batch normalization) is imported before .reduce: importing the submodule binds the name
# `norm` on this package, and the reduce line below must rebind it to the vector-norm op.
from .norm import batch_normalization, batch_normalization_training, moments
from .pool import average_pool, max_pool
from .recurrent import embedding_lookup, gru, lstm, simple_rnn
from .reduce import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, norm, std, sum, var
from .shape import (arange, concatenate, expand_dims, eye, flatten, full, getitem, one_hot, ones,
                    ones_like, pad, reshape, shape, split, squeeze, stack, take, transpose, zeros,
                    zeros_like)
