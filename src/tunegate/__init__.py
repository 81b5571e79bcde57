"""tunegate: a quality gate for LLM fine-tuning (LoRA, QLoRA, DoRA, full)."""

from tunegate._offline import enforce_offline
from tunegate.resources import set_process_defaults

__version__ = "0.1.0"

enforce_offline()
set_process_defaults()  # before torch is imported: idle OpenMP threads sleep instead of spinning
