"""CuPy implementations: transport."""
