"""The CPU demo: SafeEraser's finding in miniature, through the same paths a GPU user takes.

Steps (each reused on a re-run when its inputs did not change):
 1. synthetic SafeEraser data;  2. a small LLaVA built from a config;  3. LLaMA-Factory datasets;
 4. a "vanilla" model that complies (plain `llamafactory-cli train`, SFT);
 5-20. GA, GD, KL, PO, NPO, SimNPO, IdkDPO, RMU, each without and with PD
       (`llamafactory-cli train yaml/tiny_*.yaml`);
 21. the `safeeraser` lm-eval group on the vanilla model and all sixteen runs;
 22. report.md with the paper-style table, a plot, and the measured outcome.
"""

from typing import Any

__all__ = ["DemoSettings", "run_demo"]


def __getattr__(name: str) -> Any:  # lazily: the CLI reads demo.settings without the pipeline's imports
    if name == "run_demo":
        from .pipeline import run_demo

        return run_demo
    if name == "DemoSettings":
        from .settings import DemoSettings

        return DemoSettings
    raise AttributeError(name)
