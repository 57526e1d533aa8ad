"""The prompt text of one question, as the SafeEraser evaluation writes it (``lmeval_task/documents.py``)."""

from __future__ import annotations

from ..data.prompt import IMAGE_PLACEHOLDER, llava_prompt
from ..errors import SafeEraserError
from ..integration.prompts import render_user_prompt


def check_template(template: str) -> None:
    """One line for a template that is unknown or cannot be rendered without a model (before any model loads)."""
    try:
        render_user_prompt(template, llava_prompt("?"))
    except ValueError as err:
        raise SafeEraserError(f"key 'template': {err}") from None


def model_prompt(template: str, question: str, image_token: str) -> str:
    """The user turn ``<image>\\nquestion`` rendered by the LLaMA-Factory template, ``<image>`` swapped for the
    model's image token (its processor expands it, as lm-eval's hf-multimodal has it do)."""
    return render_user_prompt(template, llava_prompt(question)).replace(IMAGE_PLACEHOLDER, image_token)
