"""Attention kernels: fused scaled-dot-product attention forward and backward (Cython, see
_attention.pyx).

Design: all Cython. The forward is what inference runs, so it is compiled ahead of time; the
backward shares the forward's tile code (score recomputation, masks, the dropout hash), so it
lives in the same file rather than in a Numba twin that would have to reproduce them exactly.

Legend: B batch, T query length, S key length, H query heads, Hk key/value heads, D key dim,
Dv value dim.
"""
from ._attention import (BC, BC_FORWARD, BR, NEG, attention_backward, attention_dropout_keep, attention_forward,
                         dropout_threshold, set_isa)

KERNELS = {
    "attention_forward": attention_forward,
    "attention_backward": attention_backward,
    "attention_dropout_keep": attention_dropout_keep,
}

__all__ = ["BC", "BC_FORWARD", "BR", "NEG", "dropout_threshold", "set_isa", *KERNELS]
