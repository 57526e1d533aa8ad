"""The SafeEraser lm-eval task: its documents, metric declarations and functions, judges, per-response scoring.

lm-eval loads ``tasks/safeeraser/`` (YAML plus ``utils.py``), and ``utils.py`` calls this layer; nothing here
runs lm-eval or writes results (that is :mod:`llamafactory_safeeraser.evaluation`).
"""
