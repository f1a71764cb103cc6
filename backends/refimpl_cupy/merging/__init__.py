"""CuPy implementations: merging."""
