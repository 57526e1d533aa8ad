"""Llama-3.2-Vision (LLaMA-Factory template `mllama`): a BOS prefix, no default system prompt, one <|image|>
per image; the image enters through cross-attention layers."""

from __future__ import annotations

import math
from typing import Any

from .sizes import tiny_size
from .tokenizer import ChatFormat, TokenizerSpec, chat_template, default_corpus, set_generation_tokens, train_tokenizer

MLLAMA_FORMAT = ChatFormat(
    "",
    "<|start_header_id|>system<|end_header_id|>\n\n",
    "<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\n",
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|eot_id|>",
    image="<|image|>\n",
    prefix="<|begin_of_text|>",
)
MLLAMA_TOKENS = TokenizerSpec(
    special_tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|python_tag|>",
        "<|finetune_right_pad_id|>",
        "<|image|>",
    ),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",  # what LLaMA-Factory's template sets (replace_eos)
    pad_token="<|finetune_right_pad_id|>",
    unk_token=None,
    named_tokens={"image_token": "<|image|>"},
    corpus=("system\n\nuser\n\nassistant\n\n",),
)


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Llama-3.2-Vision-style (Mllama) model.

    The image enters through cross-attention (text layer 1 here), not as tokens: the prompt holds one
    <|image|>. A 32 px image is one 32 px tile of 4x4 patches; the processor pads to 4 tiles as the real one.
    """
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    spec = tiny_size(size, "mllama")
    template = chat_template(MLLAMA_FORMAT)
    tokenizer = train_tokenizer(default_corpus(MLLAMA_TOKENS), spec.vocab_size, MLLAMA_TOKENS, template)
    image_processor = MllamaImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size}, max_image_tiles=4
    )
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    intermediate_layers = list(range(spec.vision_layers))  # the real model taps 5 of its 32 layers
    vision = {
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_hidden * 2,
        "num_hidden_layers": spec.vision_layers,
        "num_global_layers": 1,
        "attention_heads": 2,
        "image_size": spec.image_size,  # the tile size
        "patch_size": spec.patch_size,
        "max_num_tiles": 4,
        "intermediate_layers_indices": intermediate_layers,
        "vision_output_dim": spec.vision_hidden * (1 + len(intermediate_layers)),
    }
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers + 1,
        "cross_attention_layers": [1],  # self, cross, self
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_heads,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    # Mllama's tanh gates start at 0, which shuts out the image (cross-attention) and the tile/position
    # embeddings until training opens them; a pretrained model has them open. Open them all at pi/4,
    # the value transformers gives the vision encoder's own gates.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.numel() == 1 and "gate" in name.rsplit(".", 1)[-1]:
                parameter.fill_(math.pi / 4)
    set_generation_tokens(model, tokenizer)
    return model, processor
