"""norm kernels (being written)."""
KERNELS = {}
