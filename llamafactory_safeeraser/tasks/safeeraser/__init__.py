"""The ``safeeraser`` lm-eval task group (YAML configs and their ``utils.py`` hooks)."""
