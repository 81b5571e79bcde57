"""tunegate.approval."""
