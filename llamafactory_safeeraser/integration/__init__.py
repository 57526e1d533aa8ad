"""The only code that touches LLaMA-Factory internals (the bottom layer of the package).

A LLaMA-Factory upgrade should need changes here and nowhere else: ``llamafactory`` holds the training
side (re-exports, dataset tokenization, installing a stage into the parser and the tuner, the callbacks
a stage gets), ``trainer_log`` the loss terms in LLaMA-Factory's progress file, ``llamaboard`` a stage in
its web UI, ``prompts`` the prompt rendering lm-eval needs, ``template_match`` whether a template's image
plugin fits a model. Nothing here imports the rest of the package but the layers below (errors, fileio).
"""
