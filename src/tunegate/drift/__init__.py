"""Drift monitoring of deployed adapters: production prompts vs the training distribution."""
