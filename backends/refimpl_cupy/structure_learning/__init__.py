"""CuPy implementations: structure learning."""
