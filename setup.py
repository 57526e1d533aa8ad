"""Packaging for llamafactory-safeeraser.

Besides the package, every install (wheel, sdist, editable) puts ``llamafactory_safeeraser.pth``
into site-packages. That start-up hook is what makes ``stage: unlearn`` exist in a plain
``llamafactory-cli train`` and in its torchrun workers (see llamafactory_safeeraser/hook/startup.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_FILE = "llamafactory_safeeraser.pth"
README = Path(HERE, "README.md")


class BuildPyWithPth(build_py):
    """Wheel installs: ship the .pth at the top of the wheel, i.e. into site-packages."""

    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join(HERE, PTH_FILE), os.path.join(self.build_lib, PTH_FILE))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_FILE)]


class EditableWheelWithPth(editable_wheel):
    """Editable installs (PEP 660): setuptools writes a wheel of links; add our .pth file to it."""

    def _select_strategy(self, name, tag, build_lib):
        strategy = super()._select_strategy(name, tag, build_lib)
        pth_source = os.path.join(HERE, PTH_FILE)

        class _WithPth:
            def __call__(self, wheel, files, mapping):
                strategy(wheel, files, mapping)
                with open(pth_source, "rb") as handle:
                    wheel.writestr(PTH_FILE, handle.read())

            def __enter__(self):
                strategy.__enter__()
                return self

            def __exit__(self, *exc):
                return strategy.__exit__(*exc)

        return _WithPth()


LOGGERS = ["tensorboard>=2.14", "wandb>=0.19"]
TORCH = "torch>=2.4,<2.15"  # 2.14.1 is the newest wheel on the build machines' disk; CUDA builds welcome

setup(
    name="llamafactory-safeeraser",
    version="0.1.0",
    description="SafeEraser safety unlearning for multimodal LLMs as a LLaMA-Factory stage and an lm-eval task group",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["llamafactory_safeeraser", "llamafactory_safeeraser.*"]),
    include_package_data=True,
    package_data={
        "llamafactory_safeeraser": [
            "tasks/safeeraser/*.yaml",
            "tasks/safeeraser/_template_yaml",
            "tasks/safeeraser/README.md",
        ]
    },
    install_requires=[
        "llamafactory>=0.9.5,<0.9.6",
        "transformers>=4.55,<=5.6.0",
        "peft>=0.18.0,<=0.18.1",
        "trl>=0.18,<=0.24.0",
        "lm-eval>=0.4.13,<0.5",
        TORCH,
        "torchvision>=0.19,<0.30",
        "datasets>=2.16,<=4.0.0",
        "rouge-score>=0.1.2",
        "openai>=1.40",
        "pillow>=10",
        "tokenizers>=0.21",
        "matplotlib>=3.7",
        "numpy",
        "pyyaml",
    ],
    extras_require={
        # the LlamaBoard browser test (Debian's chromium and chromium-driver besides) and the logger tests
        "test": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "selenium>=4.20", *LOGGERS],
        "deepspeed": ["deepspeed>=0.15,<0.20"],
        "logging": LOGGERS,  # `report_to: tensorboard` / `wandb`
    },
    # the recipes, so that `safeeraser demo` finds them outside a repository checkout too
    data_files=[
        ("share/llamafactory-safeeraser/yaml", sorted(f"yaml/{p.name}" for p in Path(HERE, "yaml").glob("*.yaml")))
    ],
    entry_points={"console_scripts": ["safeeraser=llamafactory_safeeraser.cli:main"]},
    cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth},
)
