"""tunegate.pii."""
