"""How the plugin hooks into LLaMA-Factory (the top layer): the start-up hook that every Python process runs
from ``llamafactory_safeeraser.pth``, and the `unlearn` stage it installs when LLaMA-Factory's tuner loads."""
