"""tunegate.evaluation."""
