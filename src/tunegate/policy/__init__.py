"""tunegate.policy."""
