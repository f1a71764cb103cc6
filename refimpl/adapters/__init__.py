"""adapters (ops to come)."""
