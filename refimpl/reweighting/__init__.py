"""reweighting (ops to come)."""
