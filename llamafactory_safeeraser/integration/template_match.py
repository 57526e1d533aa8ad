"""Does a LLaMA-Factory template fit a model? Its multimodal plugin's image token must be a token of the model.

Derived from LLaMA-Factory's template registry (the template's ``mm_plugin``) and the model folder's own files
(``config.json``'s ``model_type``, the processor class, the tokenizer's added tokens), not from a list of
families: a LLaVA model has ``<image>``, Qwen2-VL ``<|image_pad|>``, Mllama ``<|image|>``, and a template whose
plugin writes another image token renders prompts the model cannot read (wrong chat format) or crashes in
the plugin mid-run. Only local model folders are checked; a hub id is left to LLaMA-Factory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamafactory.data.template import TEMPLATES

from ..errors import SafeEraserError


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def model_tokens(folder: Path) -> set[str]:
    """The tokenizer's added (special) tokens, as its saved files list them."""
    config = _read_json(folder / "tokenizer_config.json")
    tokens = {str(entry.get("content")) for entry in config.get("added_tokens_decoder", {}).values()}
    tokens |= {str(entry.get("content")) for entry in _read_json(folder / "tokenizer.json").get("added_tokens", [])}
    return tokens


def model_description(folder: Path) -> str:
    model_type = _read_json(folder / "config.json").get("model_type", "unknown")
    processor = next(
        (
            _read_json(folder / name).get("processor_class")
            for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
            if _read_json(folder / name).get("processor_class")
        ),
        None,
    )
    return f"model_type '{model_type}'" + (f", {processor}" if processor else "")


def check_template_fits_model(template: str, model: str | Path) -> None:
    """Raise SafeEraserError (one line naming both) when ``template``'s image plugin does not fit ``model``."""
    folder = Path(model).expanduser()
    if template not in TEMPLATES or not (folder / "config.json").is_file():
        return  # an unknown template is LLaMA-Factory's own error; a hub id is not checked here
    plugin = TEMPLATES[template].mm_plugin
    image_token = getattr(plugin, "image_token", None)
    tokens = model_tokens(folder)
    if image_token is None or not tokens or image_token in tokens:
        return
    model_type = _read_json(folder / "config.json").get("model_type")
    same_name = TEMPLATES.get(model_type) if isinstance(model_type, str) else None
    fits = same_name is not None and getattr(same_name.mm_plugin, "image_token", None) in tokens
    hint = f"; template '{model_type}' fits it" if fits else "; use the template the model was trained with"
    raise SafeEraserError(
        f"template '{template}' ({type(plugin).__name__}, image token {image_token}) does not fit the model "
        f"{model} ({model_description(folder)}, which has no {image_token} token){hint}"
    )
