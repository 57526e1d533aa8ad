"""lm-eval's log lines that our runs silence: warnings it prints on every run of our tasks although nothing is
wrong (and bitsandbytes' on every matrix product of a quantized run). Silenced in our runner only; plain
``lm-eval`` shows them as usual."""

from __future__ import annotations

import logging

# Our tasks load their data through `custom_dataset`, hf-multimodal models are neither CausalLM nor Seq2SeqLM,
# and we pass the generation overrides on purpose. A quantized run hands hf-multimodal its loaded model (one
# process; the model arguments it then ignores are the loading ones), and bitsandbytes' CPU int8 product takes
# float16 inputs by design.
EXPECTED_LM_EVAL_WARNINGS = {
    "lm_eval.api.task": ("Custom kwargs can be passed to `--metadata`",),
    "lm_eval.models.huggingface": (
        "HF model type is neither marked as CausalLM or Seq2SeqLM",
        "`pretrained` model kwarg is not of type `str`",
    ),
    "lm_eval.evaluator": ("generation_kwargs: ", "Passed an already-initialized model through `pretrained`"),
    "bitsandbytes.autograd._functions": ("MatMul8bitLt: inputs will be cast",),
}


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def quiet_expected_lm_eval_warnings() -> None:
    """Drop the lm-eval warnings listed in EXPECTED_LM_EVAL_WARNINGS (idempotent)."""
    for name, fragments in EXPECTED_LM_EVAL_WARNINGS.items():
        target = logging.getLogger(name)
        for fragment in fragments:
            if not any(isinstance(f, _DropMessage) and f.fragment == fragment for f in target.filters):
                target.addFilter(_DropMessage(fragment))
