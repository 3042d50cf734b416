"""Reference activations for the kernel tests: plain NumPy/SciPy in float64, from the formulas.

Written independently of dlcore (never imports it). Each activation ``name`` has a forward
``FORWARD[name](x, alpha)`` and a derivative ``DERIVATIVE[name](x, alpha)`` (d act / dx at x);
softmax and log_softmax run over the last axis, with vector-Jacobian products built from the
explicit Jacobians. ``alpha`` is leaky_relu's negative slope or elu's alpha; the other
activations ignore it.
"""
import numpy as np
from scipy import special

# Keras 3 constants.
SELU_ALPHA = 1.67326324235437728481704299167171
SELU_SCALE = 1.05070098735548049341933498529460
GELU_C = np.sqrt(2.0 / np.pi)
GELU_K = 0.044715


def _f64(x):
    return np.asarray(x, dtype=np.float64)


# ---- forwards ---------------------------------------------------------------------------------
def linear(x, alpha=0.0):
    return _f64(x).copy()


def relu(x, alpha=0.0):
    return np.maximum(_f64(x), 0.0)


def sigmoid(x, alpha=0.0):
    return special.expit(_f64(x))


def tanh(x, alpha=0.0):
    return np.tanh(_f64(x))


def leaky_relu(x, alpha=0.2):
    x = _f64(x)
    return np.where(x >= 0, x, alpha * x)


def elu(x, alpha=1.0):
    x = _f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def selu(x, alpha=0.0):
    x = _f64(x)
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def gelu(x, alpha=0.0):
    x = _f64(x)
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


def gelu_tanh(x, alpha=0.0):
    x = _f64(x)
    return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + GELU_K * x**3)))


def silu(x, alpha=0.0):
    x = _f64(x)
    return x * special.expit(x)


def softplus(x, alpha=0.0):
    return np.logaddexp(0.0, _f64(x))


def softsign(x, alpha=0.0):
    x = _f64(x)
    return x / (1.0 + np.abs(x))


def hard_sigmoid(x, alpha=0.0):
    return relu6(_f64(x) + 3.0) / 6.0


def relu6(x, alpha=0.0):
    return np.minimum(np.maximum(_f64(x), 0.0), 6.0)


def exponential(x, alpha=0.0):
    return np.exp(_f64(x))


def softmax(x):
    return special.softmax(_f64(x), axis=-1)


def log_softmax(x):
    return special.log_softmax(_f64(x), axis=-1)


# ---- derivatives d act(x) / dx ------------------------------------------------------------------
def d_linear(x, alpha=0.0):
    return np.ones_like(_f64(x))


def d_relu(x, alpha=0.0):
    return (_f64(x) > 0).astype(np.float64)  # 0 at x == 0, as TF/PyTorch


def d_sigmoid(x, alpha=0.0):
    s = sigmoid(x)
    return s * (1.0 - s)


def d_tanh(x, alpha=0.0):
    return 1.0 - np.tanh(_f64(x)) ** 2


def d_leaky_relu(x, alpha=0.2):
    return np.where(_f64(x) > 0, 1.0, alpha)


def d_elu(x, alpha=1.0):
    x = _f64(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def d_selu(x, alpha=0.0):
    x = _f64(x)
    return SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0)))


def d_gelu(x, alpha=0.0):
    x = _f64(x)
    cdf = 0.5 * (1.0 + special.erf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return cdf + x * pdf


def d_gelu_tanh(x, alpha=0.0):
    x = _f64(x)
    t = np.tanh(GELU_C * (x + GELU_K * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * x * x)


def d_silu(x, alpha=0.0):
    x = _f64(x)
    s = special.expit(x)
    return s * (1.0 + x * (1.0 - s))


def d_softplus(x, alpha=0.0):
    return special.expit(_f64(x))


def d_softsign(x, alpha=0.0):
    return 1.0 / (1.0 + np.abs(_f64(x))) ** 2


def d_hard_sigmoid(x, alpha=0.0):
    x = _f64(x)
    return np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)


def d_relu6(x, alpha=0.0):
    x = _f64(x)
    return np.where((x > 0.0) & (x < 6.0), 1.0, 0.0)


def d_exponential(x, alpha=0.0):
    return np.exp(_f64(x))


def softmax_jacobian(x):
    """(R, C, C): J[r, i, j] = d softmax(x[r])_i / d x[r, j] = y_i (delta_ij - y_j)."""
    y = softmax(x)
    eye = np.eye(y.shape[-1])
    return y[:, :, None] * (eye[None] - y[:, None, :])


def log_softmax_jacobian(x):
    """(R, C, C): J[r, i, j] = d log_softmax(x[r])_i / d x[r, j] = delta_ij - softmax(x[r])_j."""
    p = softmax(x)
    eye = np.eye(p.shape[-1])
    return eye[None] - p[:, None, :]


def softmax_vjp(x, dy):
    """dx[r, j] = sum_i dy[r, i] J[r, i, j]."""
    return np.einsum("ri,rij->rj", _f64(dy), softmax_jacobian(x))


def log_softmax_vjp(x, dy):
    return np.einsum("ri,rij->rj", _f64(dy), log_softmax_jacobian(x))


NAMES = (
    "linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh",
    "silu", "softplus", "softsign", "hard_sigmoid", "relu6", "exponential",
)
FORWARD = {name: globals()[name] for name in NAMES}
DERIVATIVE = {name: globals()["d_" + name] for name in NAMES}
# Points where the derivative jumps (finite differences stay away from them).
KINKS = {
    "relu": (0.0,),
    "leaky_relu": (0.0,),
    "elu": (0.0,),
    "selu": (0.0,),
    "hard_sigmoid": (-3.0, 3.0),
    "relu6": (0.0, 6.0),
}


def add_repeated(a, b):
    """``a + b`` where ``b``'s shape is a trailing part of ``a``'s (NumPy broadcasting, float64)."""
    return (np.asarray(a, np.float64) + np.asarray(b, np.float64)).astype(np.result_type(a, b))


def fill(shape, value, dtype):
    """An array of ``shape`` holding ``value``."""
    return np.full(shape, value, dtype=dtype)
