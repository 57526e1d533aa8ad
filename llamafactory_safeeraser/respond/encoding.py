"""What ``respond`` generates from, made as the SafeEraser evaluation makes lm-eval's inputs.

The prompt text is the lm-eval documents' (``lmeval_task.documents.render_prompt``: the LLaMA-Factory
template's first user turn ``<image>\\nquestion``, written for the model's tokenizer so that one encode gives
the ids training encodes part by part); the processor is made to write one BOS as training does (the
evaluation runner's ``one_bos_like_training``); ``<image>`` becomes the processor's image token, which the
processor expands, as lm-eval's ``hf-multimodal`` has it; images are resized as LLaMA-Factory resizes them.
No weights are needed: the model's config, tokenizer and processor are enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.user_turn import IMAGE_PLACEHOLDER, user_turn
from ..errors import SafeEraserError
from ..evaluation.processor_bos import one_bos_like_training
from ..integration.template_text import render_user_prompt, training_image
from ..lmeval_task.documents import render_prompt
from .items import Item
from .settings import RespondSettings


def check_template(template: str) -> None:
    """One line for a template that is unknown or cannot be rendered without a model (before any model loads)."""
    try:
        render_user_prompt(template, user_turn("?"))
    except ValueError as err:
        raise SafeEraserError(f"key 'template': {err}") from None


class PromptEncoder:
    """The model's processor, set up as the evaluation sets up lm-eval's, and the prompts it encodes."""

    def __init__(self, settings: RespondSettings, processor: Any = None, config: Any = None):
        from transformers import AutoConfig, AutoProcessor

        self.settings = settings
        self.processor = processor if processor is not None else AutoProcessor.from_pretrained(settings.model)
        self.config = config if config is not None else AutoConfig.from_pretrained(settings.model)
        one_bos_like_training(self.processor)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # new tokens follow every prompt directly
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def image_token(self) -> str:
        """The processor's image token (what lm-eval's hf-multimodal writes for ``<image>``)."""
        token = getattr(self.processor, "image_token", None)
        if token is None:
            token_id = getattr(self.config, "image_token_id", None) or getattr(self.config, "image_token_index", None)
            if token_id is None:
                raise SafeEraserError(f"{self.settings.model}: the model declares no image token")
            token = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return token

    def prompt(self, question: str) -> str:
        """The evaluation's prompt of ``question`` for this model, ``<image>`` swapped for its image token."""
        text = render_prompt(self.settings.template, question, str(self.settings.model))
        return text.replace(IMAGE_PLACEHOLDER, self.image_token)

    def encode(self, items: Sequence[Item]) -> Any:
        """The left-padded batch (ids, attention mask, pixel values, ...) on the CPU."""
        from PIL import Image

        settings = self.settings
        images = []
        for item in items:
            with Image.open(item.image) as image:
                rgb = image.convert("RGB")
            images.append(training_image(settings.template, rgb, settings.image_max_pixels, settings.image_min_pixels))
        # LLaVA's processor takes one flat list of images for a batch; the others one list per prompt (as lm-eval)
        batch_images: list = images if self.config.model_type == "llava" else [[image] for image in images]
        prompts = [self.prompt(item.question) for item in items]
        return self.processor(images=batch_images, text=prompts, padding="longest", return_tensors="pt")
