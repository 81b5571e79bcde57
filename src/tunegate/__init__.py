"""tunegate: a quality gate for LLM fine-tuning (LoRA, QLoRA, DoRA, full)."""

from tunegate._offline import enforce_offline

__version__ = "0.1.0"

enforce_offline()
