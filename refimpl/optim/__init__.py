"""optim (ops to come)."""
