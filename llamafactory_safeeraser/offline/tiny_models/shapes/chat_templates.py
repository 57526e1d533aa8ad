"""Chat templates that render what the released models' templates render (written here, not copied).

They cover the messages this project sends: a system turn (or none), user turns of text and images,
assistant turns, and the generation prompt. Tool calls, which the released Llama 3.2 template also
handles, are left out. Nothing in training or evaluation reads them (LLaMA-Factory and our lm-eval
tasks write prompts with the LLaMA-Factory template); they make the checkpoint's
``apply_chat_template`` behave like the released one.
"""

from __future__ import annotations

# LLaVA-1.5 (llava-hf): "USER: " / "ASSISTANT: " prefixes, a system turn as bare text, images first in a
# turn ("<image>\n" each), every text followed by a space; no default system prompt.
LLAVA = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{- message['role'].upper() + ': ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] + ' ' -}}{%- else -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{{- '<image>\\n' -}}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}{{- part['text'] + ' ' -}}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


def _chatml(image: str, video: str) -> str:
    """ChatML turns (Qwen-VL, InternVL), each image and video written as ``image`` / ``video``."""
    return (
        "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
        "{%- for part in message['content'] -%}"
        f"{{%- if part['type'] == 'image' -%}}{{{{- '{image}' -}}}}"
        f"{{%- elif part['type'] == 'video' -%}}{{{{- '{video}' -}}}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


# Qwen3-VL-Instruct: ChatML turns, each image as <|vision_start|><|image_pad|><|vision_end|> (the processor
# expands the pad); no default system turn.
QWEN3_VL = _chatml("<|vision_start|><|image_pad|><|vision_end|>", "<|vision_start|><|video_pad|><|vision_end|>")
# Qwen2-VL-Instruct: the same, with "You are a helpful assistant." when no system turn comes first.
QWEN2_VL = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}" + QWEN3_VL
)

# Llama-3.2-Vision-Instruct: BOS, Llama 3 headers; a system header (knowledge cut-off, today's date, the
# system text) only for prompts without images, where a system turn is refused; "<|image|>" per image.
MLLAMA = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(images=false, system='') -%}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set ns.system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] -%}{%- set messages = messages[1:] -%}{%- endif -%}"
    "{%- for message in messages if message['content'] is not string -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{%- set ns.images = true -%}{%- endfor -%}"
    "{%- endfor -%}"
    "{%- if ns.images and ns.system -%}"
    "{{- raise_exception('Prompting with images is incompatible with system messages.') -}}{%- endif -%}"
    "{%- if not ns.images -%}"
    "{%- set today = strftime_now('%d %b %Y') if strftime_now is defined else '26 Jul 2024' -%}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: ' "
    "+ today + '\\n\\n' + ns.system | trim + '<|eot_id|>' -}}{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] | trim -}}{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|image|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] | trim -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

# Gemma 3 (instruction-tuned): BOS, turns "<start_of_turn>user|model\n ... <end_of_turn>\n", a system turn
# written at the start of the first user turn, each image as <start_of_image> (the processor expands it),
# texts trimmed.
GEMMA3 = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(prefix='') -%}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set ns.prefix = (messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text']) + '\\n\\n' -%}{%- set messages = messages[1:] -%}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' + (ns.prefix if loop.first else '') -}}"
    "{%- if message['content'] is string -%}{{- message['content'] | trim -}}{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<start_of_image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] | trim -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

# InternVL 3 (transformers format): ChatML turns, no default system turn, each image as "<IMG_CONTEXT>\n"
# (the processor wraps and expands it: <img> + 256 x <IMG_CONTEXT> + </img> per tile).
INTERN_VL = _chatml("<IMG_CONTEXT>\\n", "<video>\\n")

# Qwen2.5-VL renders as Qwen2-VL; llava-hf's LLaVA-NeXT (Vicuna) as its LLaVA-1.5
CHAT_TEMPLATES = {
    "llava": LLAVA,
    "qwen2_vl": QWEN2_VL,
    "mllama": MLLAMA,
    "qwen2_5_vl": QWEN2_VL,
    "qwen3_vl": QWEN3_VL,
    "gemma3": GEMMA3,
    "intern_vl": INTERN_VL,
    "llava_next": LLAVA,
}
