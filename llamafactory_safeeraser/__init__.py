"""Safety unlearning for multimodal LLMs (SafeEraser) inside LLaMA-Factory and lm-eval.

Kept import-light on purpose: the start-up hook imports this package in every Python process.
"""

__version__ = "0.1.0"

# LLaMA-Factory versions whose internals integration/contract.py was checked against: 0.9.5 and the main
# branch (0.9.6.dev0). setup.py reads this line.
SUPPORTED_LLAMAFACTORY = ">=0.9.5,<0.9.7"
