"""conv kernels (being written)."""
KERNELS = {}
