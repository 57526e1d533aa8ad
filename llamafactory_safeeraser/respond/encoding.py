"""What ``respond`` generates from, made as the SafeEraser evaluation makes lm-eval's inputs.

The prompt text is the lm-eval documents' (``lmeval_task.documents.render_prompt``: the LLaMA-Factory
template's first user turn ``<image>\\nquestion``, written for the model's tokenizer so that one encode gives
the ids training encodes part by part); the processor is made to write one BOS as training does (the
evaluation runner's ``one_bos_like_training``); ``<image>`` becomes the model's image token (the token of
``config.image_token_id``), which the processor expands, as lm-eval's ``hf-multimodal`` has it; images are
resized as LLaMA-Factory resizes them. No weights are needed: the model's config, tokenizer and processor are
enough, and nothing here depends on the family's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.user_turn import IMAGE_PLACEHOLDER
from ..errors import SafeEraserError
from ..evaluation.processor_bos import one_bos_like_training
from ..integration.template_match import check_template_serves_model
from ..integration.template_text import training_image
from ..lmeval_task.documents import render_prompt
from .items import Item
from .settings import RespondSettings


def check_template(template: str, model: str) -> None:
    """One line for a template or model the plugin cannot serve (before any model loads): the evaluation's and the
    stage's check (``integration.template_match.check_template_serves_model``)."""
    try:
        check_template_serves_model(template, model)
    except SafeEraserError as err:
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
        """The model's image token, as lm-eval's hf-multimodal finds it: ``config.image_token_id`` (or
        ``image_token_index``) decoded by the tokenizer."""
        token_id = getattr(self.config, "image_token_id", None) or getattr(self.config, "image_token_index", None)
        if token_id is None:
            raise SafeEraserError(f"model {self.settings.model}: config.json declares no image token")
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

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
        # one list of images per prompt: what every processor takes (lm-eval flattens the lists for model_type
        # llava, whose processor gives the same batch from either; tests/respond/test_respond_prompts.py)
        batch_images = [[image] for image in images]
        prompts = [self.prompt(item.question) for item in items]
        return self.processor(images=batch_images, text=prompts, padding="longest", return_tensors="pt")
