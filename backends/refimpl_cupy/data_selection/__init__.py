"""CuPy implementations: data_selection."""
