"""pool kernels (being written)."""
KERNELS = {}
