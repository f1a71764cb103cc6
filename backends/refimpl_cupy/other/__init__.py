"""CuPy implementations: other."""
