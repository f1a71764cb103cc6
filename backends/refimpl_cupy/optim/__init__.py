"""CuPy implementations: optim."""
