"""tunegate.training."""
