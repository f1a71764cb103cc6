"""CuPy implementations: regularizers."""
