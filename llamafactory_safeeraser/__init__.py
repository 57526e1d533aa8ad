"""Safety unlearning for multimodal LLMs (SafeEraser) inside LLaMA-Factory and lm-eval.

Kept import-light on purpose: the start-up hook imports this package in every Python process.
"""

__version__ = "0.1.0"

# LLaMA-Factory releases whose internals the integration module was written and tested against.
SUPPORTED_LLAMAFACTORY = ">=0.9.5,<0.9.6"
