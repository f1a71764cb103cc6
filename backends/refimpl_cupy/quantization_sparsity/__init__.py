"""CuPy implementations: quantization sparsity."""
