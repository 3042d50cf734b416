"""Embedding kernels: the row gather and its scatter-add (Cython, _embedding.pyx).

embedding_forward(ids_n, w_vd, y_nd, n_threads=1)
embedding_backward(ids_n, dy_nd, dw_vd)

Legend: N lookups (flattened), V vocabulary rows, D embedding width.
"""
from ._embedding import embedding_backward, embedding_forward

KERNELS = {
    "embedding_forward": embedding_forward,
    "embedding_backward": embedding_backward,
}
