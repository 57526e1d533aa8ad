"""Prompts as LLaMA-Factory's templates write them, for lm-eval to send what training saw.

Built on template and multimodal-plugin internals, hence here in the integration package.
"""

import copy
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from llamafactory.data.data_utils import Role
from llamafactory.data.template import TEMPLATES
from llamafactory.extras.constants import IMAGE_PLACEHOLDER
from llamafactory.hparams import ModelArguments

# What a plugin may read from the processor while not expanding image tokens (Qwen2-VL: the merge size);
# never the image itself. It lets a prompt be rendered without loading a model, for the plugins that need no more.
_UNEXPANDED_PROCESSOR = SimpleNamespace(image_processor=SimpleNamespace(merge_size=1))
# What a plugin raises when it reads more of a processor (or of the image) than the placeholder has
_PLUGIN_WANTS_MORE = (AttributeError, TypeError, ValueError, KeyError, IndexError)


class PluginNeedsProcessor(ValueError):
    """A template's multimodal plugin reads the model's processor (or the image) to write its image tokens."""


def image_placeholder_text(
    template_name: str, user_content: str, processor: Any = None, images: Sequence[Any] | None = None
) -> str:
    """``user_content`` as the template's multimodal plugin writes it, each image token still unexpanded.

    The plugin runs with ``expand_mm_tokens`` off, as in LLaMA-Factory's own vLLM and SGLang engines,
    where the engine's processor expands the image token. What the plugin wraps around the token stays
    (``qwen2_vl``: ``<|vision_start|><image><|vision_end|>``); the plugin's image token itself is written
    back as ``<image>``, the placeholder lm-eval's hf-multimodal swaps for the model's image token (the
    token of ``config.image_token_id``) before the processor expands it (``llava``: unchanged; ``mllama``:
    ``<|image|>`` needs no expansion). A plugin that writes another token for the processor to expand
    keeps it (``gemma3``: ``<start_of_image>``, which Gemma3Processor expands into its image sequence).

    ``processor``: the model's (``AutoProcessor``), for plugins that read it (``gemma3``: its ``boi_token``);
    without it a placeholder serves the plugins that read nothing but the merge size, and a plugin that
    wants more raises :class:`PluginNeedsProcessor`. ``images``: the PIL images, for plugins that read them
    with expansion off (one ``None`` per image otherwise).
    """
    template = _template(template_name)
    plugin = template.mm_plugin
    n_images = user_content.count(IMAGE_PLACEHOLDER)
    if n_images == 0 or plugin.image_token is None:  # a text-only template leaves the tag alone
        return user_content
    plugin = copy.copy(plugin)
    plugin.expand_mm_tokens = False
    if images is None and processor is not None:  # plugins that read the image (InternVL: its tiles) get a stand-in
        images = [_stand_in_image(processor)] * n_images
    given = list(images) if images is not None else [None] * n_images
    try:
        messages = plugin.process_messages(
            [{"role": "user", "content": user_content}],
            given,
            [],
            [],
            processor if processor is not None else _UNEXPANDED_PROCESSOR,
        )
    except _PLUGIN_WANTS_MORE as err:  # it wanted more of a processor (or the image)
        what = "the model's processor" if processor is None else f"more than {type(processor).__name__} has"
        raise PluginNeedsProcessor(
            f"template '{template_name}': its multimodal plugin needs {what} to write image tokens "
            f"({type(plugin).__name__}: {type(err).__name__}: {err})"
        ) from None
    content = messages[0]["content"]
    if processor is None or plugin.image_token != IMAGE_PLACEHOLDER or IMAGE_PLACEHOLDER in content:
        return content.replace(plugin.image_token, IMAGE_PLACEHOLDER)
    return _processor_writes_image_tokens(template_name, user_content, plugin, processor, given)


STAND_IN_SIDE = 224  # px; every processor resizes it (Qwen: up to its min_pixels), and only its token count is read


def _stand_in_image(processor: Any) -> Any:
    """A blank square image of the processor's tile side where it has one (InternVL: 448 px, one tile).

    Not ``size["shortest_edge"]``: the Qwen processors keep a pixel count there (Qwen3-VL: 65,536, which as a
    side would be a 12.9 GB image)."""
    from PIL import Image

    size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    side = size.get("height") or STAND_IN_SIDE
    return Image.new("RGB", (side, side))


def _processor_writes_image_tokens(
    template_name: str, user_content: str, plugin: Any, processor: Any, images: list
) -> str:
    """The plugin wrote an image's tokens itself (``intern_vl``: ``<img><IMG_CONTEXT>...</img>``) where the
    processor writes the same from its own image token: each such span becomes ``<image>`` again."""
    expanding = copy.copy(plugin)
    expanding.expand_mm_tokens = True
    image = _stand_in_image(processor)
    written = expanding.process_messages(
        [{"role": "user", "content": user_content}], [image] * len(images), [], [], processor
    )[0]["content"]
    tokenizer = processor.tokenizer
    ids = processor(text=[processor.image_token], images=[[image]])["input_ids"][0]
    specials = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    expansion = tokenizer.decode([i for i in ids if i not in specials], skip_special_tokens=False)
    if written.count(expansion) != len(images):
        raise PluginNeedsProcessor(
            f"template '{template_name}': its multimodal plugin ({type(plugin).__name__}) writes image tokens that "
            f"{type(processor).__name__} does not write from its image token {processor.image_token}"
        )
    return written.replace(expansion, IMAGE_PLACEHOLDER)


def plugin_needs_processor(template_name: str) -> bool:
    """Whether the template's multimodal plugin reads the model's processor to write one image's tokens."""
    try:
        image_placeholder_text(template_name, IMAGE_PLACEHOLDER)
    except PluginNeedsProcessor:
        return True
    return False


def training_image(
    template_name: str, image: Any, image_max_pixels: int | None = None, image_min_pixels: int | None = None
) -> Any:
    """``image`` (PIL) resized as LLaMA-Factory's plugin does before the image processor sees it.

    LLaMA-Factory shrinks images above ``image_max_pixels`` (and enlarges those below the minimum)
    first; the processor lm-eval calls would otherwise resize the original itself. For Qwen2-VL, whose
    image-token count follows the image size, the two routes round differently and give different
    numbers of image tokens. ``None`` means LLaMA-Factory's default limit (its ModelArguments).
    """
    defaults = ModelArguments.__dataclass_fields__
    if image_max_pixels is None:
        image_max_pixels = defaults["image_max_pixels"].default
    if image_min_pixels is None:
        image_min_pixels = defaults["image_min_pixels"].default
    plugin = _template(template_name).mm_plugin
    return plugin._preprocess_image(image, image_max_pixels=image_max_pixels, image_min_pixels=image_min_pixels)


def render_user_prompt(
    template_name: str,
    user_content: str,
    system: str | None = None,
    tokenizer: Any = None,
    processor: Any = None,
    images: Sequence[Any] | None = None,
) -> str:
    """The exact prompt text a LLaMA-Factory template builds for a first user turn, images unexpanded.

    The turn's parts are the template's own (its ``_encode``: the system turn where the template class puts
    it, e.g. inside the user turn for ``gemma3``'s Llama2Template; ``system`` None or empty: the template's
    default, as LLaMA-Factory has it). Images: see :func:`image_placeholder_text` (``processor``, ``images``).
    A leading BOS slot (``mllama``, ``gemma3``) is left out: LLaMA-Factory writes it because it encodes with
    ``add_special_tokens=False``; lm-eval's processor call keeps the defaults, where the processor or
    tokenizer places BOS (MllamaProcessor prepends it to any text lacking one; Gemma's tokenizer adds it).
    Any other special-token slot cannot be written as text and raises ValueError.

    With ``tokenizer`` (the model's; ``processor.tokenizer`` when only a processor is given), the text is
    the one whose encoding in one pass gives the ids LLaMA-Factory's template encodes part by part (see
    :func:`text_encoding_like_template`); without either, the parts are joined as they are, which is the same
    text for byte-level tokenizers.
    """
    content = image_placeholder_text(template_name, user_content, processor, images)
    elements = first_turn_elements(template_name, content, system)
    if elements[:1] == [{"bos_token"}]:
        elements = elements[1:]
    if not all(isinstance(element, str) for element in elements):
        raise ValueError(f"template '{template_name}' adds special-token slots; render it with the tokenizer instead")
    if tokenizer is None and processor is not None:
        tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        return "".join(elements)
    return text_encoding_like_template(template_name, elements, tokenizer)


def first_turn_elements(template_name: str, user_content: str, system: str | None = None) -> list[Any]:
    """The parts (strings and special-token slots) the template writes for a first user turn, in its order."""
    template = copy.copy(_template(template_name))
    turns: list[list[Any]] = []
    # the template's own turn builder, stopped before it encodes: each turn's parts as they are
    template._convert_elements_to_ids = lambda _tokenizer, elements: turns.append(list(elements)) or []
    messages = [{"role": Role.USER.value, "content": user_content}, {"role": Role.ASSISTANT.value, "content": ""}]
    template._encode(None, messages, system, None)
    return turns[0]


def text_encoding_like_template(template_name: str, elements: list[str], tokenizer: Any) -> str:
    """Text that ``tokenizer`` encodes in one pass into the ids LLaMA-Factory encodes ``elements`` into.

    LLaMA-Factory encodes a prompt part by part (system turn, user turn), each with
    ``add_special_tokens=False``, while lm-eval encodes the whole prompt at once. For SentencePiece-style
    tokenizers that start every encode call with a word marker (LLaVA-1.5's Llama tokenizer) the two
    differ where the parts meet: LLaMA-Factory's ``...questions.`` + ``USER:`` gives ``▁USER``, the
    joined ``...questions.USER:`` gives ``USER``. Decoding LLaMA-Factory's ids gives the text that
    encodes back to them (``...questions. USER:``); it is checked by encoding it again. Images stay one
    ``<image>`` each.
    """
    template = _template(template_name)
    image_token = template.mm_plugin.image_token or IMAGE_PLACEHOLDER
    parts = [element.replace(IMAGE_PLACEHOLDER, image_token) for element in elements]
    ids = template._convert_elements_to_ids(tokenizer, parts)  # part by part, as training encodes
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if tokenizer.encode(text, add_special_tokens=False) != ids:
        raise ValueError(
            f"template '{template_name}': no prompt text encodes into the ids LLaMA-Factory trains on "
            "with this tokenizer (decoding and encoding them again does not round-trip)"
        )
    return text.replace(image_token, IMAGE_PLACEHOLDER)


def missing_bos(tokenizer: Any, prompt_ids: list[int]) -> list[int]:
    """``[BOS]`` when the model's tokenizer writes a BOS on a default encode and ``prompt_ids`` lack it; else ``[]``.

    LLaMA-Factory encodes with ``add_special_tokens=False`` and writes a BOS only where its template has a
    BOS slot (``mllama``); its ``llava`` template has none. LLaVA-1.5's Llama tokenizer puts ``<s>`` first,
    the model was trained with it, the SafeEraser reference trains with it, and lm-eval's processor call
    writes it: the `unlearn` stage's prompts get it too (``integration.llamafactory``).
    """
    bos = tokenizer.bos_token_id
    if bos is None or prompt_ids[:1] == [bos]:
        return []
    return [bos] if tokenizer("A")["input_ids"][:1] == [bos] else []


def template_image_token(template_name: str) -> str | None:
    """The image token of a template's multimodal plugin (``llava``: ``<image>``; None for a text-only one)."""
    return _template(template_name).mm_plugin.image_token


def _template(template_name: str) -> Any:
    if template_name not in TEMPLATES:
        raise ValueError(f"unknown LLaMA-Factory template '{template_name}'")
    return TEMPLATES[template_name]


def template_stop_words(template_name: str) -> tuple[str, ...]:
    """The strings that end an answer in ``template_name`` besides the tokenizer's EOS (Qwen2-VL: ``<|im_end|>``);
    LLaMA-Factory's own chat engine stops on them too."""
    return tuple(_template(template_name).stop_words)
