"""CuPy kernels."""
