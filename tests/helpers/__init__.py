"""Shared test code (importable as ``helpers``: pytest's ``pythonpath`` includes tests/)."""
