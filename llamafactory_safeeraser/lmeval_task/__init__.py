"""The SafeEraser lm-eval task: its documents, metric declarations and functions, judges, per-response scoring.

lm-eval loads ``tasks/safeeraser/`` (YAML plus ``utils.py``), and ``utils.py`` calls this layer; nothing here
runs lm-eval or writes results (that is :mod:`llamafactory_safeeraser.evaluation`).
"""

# lm-eval's hf-multimodal with per-document sampling seeds (``seeded_hf``): its name and class, for lm-eval's index
MODEL_NAME = "safeeraser-hf-multimodal"
MODEL_CLASS = "llamafactory_safeeraser.lmeval_task.seeded_hf:SeededHFMultimodalLM"
