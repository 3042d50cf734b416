# Design: Cython so that `evaluate` never imports numba; the op tier reshapes to (M, D), applies
# label smoothing, sample weights and the batch reduction. Each loss has `<name>_forward` (fills
# loss_out_m) and `<name>_backward` (fills dpred_out with d(sum_m dloss_m * loss_m) / d y_pred).
#
# Legend: M samples (every leading dim flattened), D values per sample (last axis), C classes.
"""Losses: per-sample Keras 3 losses reduced over the last axis (Cython kernels, see _losses.pyx)."""
from ._losses import (
    binary_crossentropy_backward,
    binary_crossentropy_forward,
    categorical_crossentropy_backward,
    categorical_crossentropy_forward,
    huber_backward,
    huber_forward,
    log_cosh_backward,
    log_cosh_forward,
    mae_backward,
    mae_forward,
    mse_backward,
    mse_forward,
    sparse_categorical_crossentropy_backward,
    sparse_categorical_crossentropy_forward,
)

# Keras' backend.epsilon(): the default clip for probability inputs.
EPSILON = 1e-7

KERNELS = {
    "mse_forward": mse_forward,
    "mse_backward": mse_backward,
    "mae_forward": mae_forward,
    "mae_backward": mae_backward,
    "huber_forward": huber_forward,
    "huber_backward": huber_backward,
    "log_cosh_forward": log_cosh_forward,
    "log_cosh_backward": log_cosh_backward,
    "binary_crossentropy_forward": binary_crossentropy_forward,
    "binary_crossentropy_backward": binary_crossentropy_backward,
    "categorical_crossentropy_forward": categorical_crossentropy_forward,
    "categorical_crossentropy_backward": categorical_crossentropy_backward,
    "sparse_categorical_crossentropy_forward": sparse_categorical_crossentropy_forward,
    "sparse_categorical_crossentropy_backward": sparse_categorical_crossentropy_backward,
}
