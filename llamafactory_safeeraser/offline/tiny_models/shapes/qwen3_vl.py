"""Qwen3-VL-8B-Instruct at its released shape: Qwen3 language model with interleaved M-RoPE, a ViT with
learned (interpolated) position embeddings whose merger is the projector, and DeepStack: three intermediate
vision layers, each through its own merger, added to the first three language layers' image positions."""

from __future__ import annotations

from typing import Any

from .qwen2_vl import pixel_budget_processor
from .released import ReleasedModel

# Three of each: every DeepStack feature comes from its own vision layer (the model looks a tapped layer up
# by its index, so two taps on one layer would silently drop a merger) and enters its own language layer.
MIN_TEXT_LAYERS = 3
MIN_VISION_LAYERS = 3


def deepstack_taps(released_taps: list[int], vision_layers: int) -> list[int]:
    """The tapped vision layers of a cut model: the released ones where kept, else the last free layers,
    in order and distinct (``[8, 16, 24]`` -> ``[0, 1, 2]`` for 3 layers, ``[8, 16, 19]`` for 20)."""
    count = len(released_taps)
    return [min(tap, vision_layers - count + i) for i, tap in enumerate(sorted(released_taps))]


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import Qwen3VLConfig

    text = {key: value for key, value in released.text_config.items() if key != "model_type"}
    text["num_hidden_layers"] = text_layers
    vision = dict(released.vision_config)
    vision.update(
        depth=vision_layers,
        deepstack_visual_indexes=deepstack_taps(vision["deepstack_visual_indexes"], vision_layers),
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    return pixel_budget_processor(Qwen3VLProcessor, Qwen3VLVideoProcessor, released, tokenizer, chat_template)
