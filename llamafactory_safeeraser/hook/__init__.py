"""How the plugin hooks into LLaMA-Factory (the top layer): the start-up hook that every Python process runs
from ``llamafactory_safeeraser.pth``, the `unlearn` stage it installs when LLaMA-Factory's tuner loads, and
the `Unlearning` stage it adds to LlamaBoard when the web UI loads."""
