"""CuPy implementations: losses."""
