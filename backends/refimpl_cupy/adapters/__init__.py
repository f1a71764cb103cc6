"""CuPy implementations: adapters."""
