"""Gemma 3 (LLaMA-Factory template `gemma3`): a SigLIP vision tower, average-pooled into a fixed number of soft
tokens per image, and a Gemma 3 language model. The tokenizer writes ``<bos>`` on encode; the prompt holds one
``<start_of_image>`` per image, which Gemma3Processor expands into ``\\n\\n<start_of_image>`` + the soft tokens +
``<end_of_image>\\n\\n``."""

from __future__ import annotations

from typing import Any

from .sizes import text_sizes, tiny_size
from .tokenizer import ChatFormat, TokenizerSpec, chat_template, default_corpus, set_generation_tokens, train_tokenizer

BOI_TOKEN, EOI_TOKEN, IMAGE_TOKEN = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
# LLaMA-Factory's gemma3 template (a Llama2Template): the system text opens the first user turn; its BOS slot is
# left to the tokenizer, which writes <bos> on every default encode (as released), so the chat template has none
GEMMA3_FORMAT = ChatFormat(
    "",
    "",
    "\n\n",
    "<start_of_turn>user\n",
    "<end_of_turn>\n<start_of_turn>model\n",
    "<end_of_turn>\n",
    image=f"{BOI_TOKEN}\n",
    system_in_user=True,
)
GEMMA3_TOKENS = TokenizerSpec(
    # the released ids of the first four (<pad> 0, <eos> 1, <bos> 2, <unk> 3)
    special_tokens=(
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<start_of_turn>",
        "<end_of_turn>",
        BOI_TOKEN,
        EOI_TOKEN,
        IMAGE_TOKEN,
    ),
    bos_token="<bos>",
    eos_token="<end_of_turn>",  # what LLaMA-Factory's template sets (replace_eos)
    pad_token="<pad>",
    unk_token="<unk>",
    named_tokens={"image_token": IMAGE_TOKEN, "boi_token": BOI_TOKEN, "eoi_token": EOI_TOKEN},
    corpus=("user\nmodel\n",),
    bos_on_encode=True,
)
SOFT_TOKENS_PER_IMAGE = 4  # 4x4 patches of a 32 px image, average-pooled 2x2


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Gemma-3-style model.

    A 32 px image is 4x4 SigLIP patches of 8 px, pooled into 4 soft tokens (the released model: 64x64 patches of
    an 896 px image into 256).
    """
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    spec = tiny_size(size, "gemma3")
    template = chat_template(GEMMA3_FORMAT)
    tokenizer = train_tokenizer(default_corpus(GEMMA3_TOKENS), spec.vocab_size, GEMMA3_TOKENS, template)
    image_processor = Gemma3ImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size}, do_pan_and_scan=False
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=template,
        image_seq_length=SOFT_TOKENS_PER_IMAGE,
    )
    ids = tokenizer.convert_tokens_to_ids
    head_dim = spec.text_hidden // spec.text_heads
    text = {
        **text_sizes(spec, tokenizer),
        "num_key_value_heads": spec.text_heads // 2,
        "head_dim": head_dim,
        "query_pre_attn_scalar": head_dim,
        "sliding_window": 64,
        "layer_types": ["sliding_attention"] * (spec.text_layers - 1) + ["full_attention"],  # released: 5 to 1
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_hidden * 2,
        "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": 2,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
        "vision_use_head": False,
    }
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=SOFT_TOKENS_PER_IMAGE,
        boi_token_index=ids(BOI_TOKEN),
        eoi_token_index=ids(EOI_TOKEN),
        image_token_index=ids(IMAGE_TOKEN),
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    # transformers starts the projector's matrix at 0, which shuts the image out until training opens it; a
    # pretrained model has it open: draw it as the other linear layers are drawn
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, config.text_config.initializer_range)
    set_generation_tokens(model, tokenizer)
    return model, processor
