"""tunegate.data."""
