"""CuPy implementations: reweighting."""
