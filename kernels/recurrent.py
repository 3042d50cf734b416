"""recurrent kernels (being written)."""
KERNELS = {}
