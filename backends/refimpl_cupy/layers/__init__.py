"""CuPy implementations: layers."""
