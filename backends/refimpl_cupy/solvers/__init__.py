"""CuPy implementations: solvers."""
