"""``safeeraser respond``: regenerate a SafeEraser file's forget targets with your own model.

The benchmark's ``model_response`` (and ``sd_response``) are LLaVA-1.5-7B's answers; unlearning another
model should ascend on that model's own answers. ``respond`` asks the model each harmful question about
its image (and, optionally, about the benign SD image), prompted as LLaMA-Factory trains and the
evaluation asks, batched and resumable, and writes the same file with those answers.
"""

from .run import RespondResult, respond
from .settings import RespondSettings

__all__ = ["RespondResult", "RespondSettings", "respond"]
