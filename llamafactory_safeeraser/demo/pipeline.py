"""The CPU demo pipeline: SafeEraser's finding in miniature, through the same paths a GPU user takes.

Steps (each reused on a re-run when its inputs did not change):
 1. synthetic SafeEraser data;  2. a small LLaVA built from a config;  3. LLaMA-Factory datasets;
 4. a "vanilla" model that complies (plain `llamafactory-cli train`, SFT);
 5-20. GA, GD, KL, PO, NPO, SimNPO, IdkDPO, RMU, each without and with PD
       (`llamafactory-cli train yaml/tiny_*.yaml`);
 21. the `safeeraser` lm-eval group on the vanilla model and all sixteen runs;
 22. report.md with the paper-style table, a plot, and the measured outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from ..evaluation.judges import JudgeConfig
from ..evaluation.report import write_report
from ..evaluation.results import RunSpec, load_run_results, run_folder_name
from ..evaluation.runner import EvalSettings, Evaluator
from ..fileio import write_json_atomic, write_text_atomic
from ..offline.synthetic import write_synthetic_benchmark
from ..offline.tiny_models import write_tiny_model
from .outcome import describe_outcome, outcome_header
from .settings import CPU_COUNT, DemoSettings, display_name, recipe_dir
from .steps import Progress, StepCache, llamafactory_train, write_demo_datasets


def run_demo(settings: DemoSettings) -> Path:
    out = settings.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    recipes = recipe_dir(settings)
    cache = StepCache(out)
    progress = Progress(total=4 + len(settings.runs) + 2)  # data, model, datasets, vanilla; runs; eval, report
    paths = {
        "data": out / "data",
        "base": out / "models/base",
        "datasets": out / "datasets",
        "vanilla": out / "vanilla",
        "runs": out / "runs",
        "eval": out / "eval",
        "logs": out / "logs",
    }
    write_json_atomic(out / "settings.json", {**asdict(settings), "out_dir": str(out), "recipes": str(recipes)})

    def step(name: str, fingerprint: str, action: Callable[[], None], message: str) -> None:
        if cache.is_done(name, fingerprint):
            progress(f"{message} (reused)")
            return
        cache.clear(name)
        action()
        cache.mark(name, fingerprint)
        progress(message)

    data_key = settings.fingerprint("seed", "images_per_concept")
    step(
        "data",
        data_key,
        lambda: write_synthetic_benchmark(
            paths["data"], settings.images_per_concept, seed=settings.seed, overwrite=True
        ),
        f"synthetic SafeEraser data -> {paths['data']}",
    )
    base_key = settings.fingerprint("seed", "model_size")
    step(
        "base",
        base_key,
        lambda: write_tiny_model(paths["base"], size=settings.model_size, seed=settings.seed, overwrite=True),
        f"{settings.model_size} LLaVA built from a config -> {paths['base']}",
    )
    datasets_key = data_key + settings.fingerprint("seed")
    step(
        "datasets",
        datasets_key,
        lambda: write_demo_datasets(paths["data"], paths["datasets"], settings.seed),
        f"LLaMA-Factory datasets -> {paths['datasets']}",
    )

    vanilla_recipe = recipes / "tiny_vanilla_sft.yaml"
    vanilla_key = hashlib.sha256(
        (
            datasets_key
            + base_key
            + vanilla_recipe.read_text()
            + json.dumps(settings.vanilla_overrides, sort_keys=True)
        ).encode()
    ).hexdigest()[:16]
    step(
        "vanilla",
        vanilla_key,
        lambda: llamafactory_train(
            vanilla_recipe,
            {
                "model_name_or_path": paths["base"],
                "dataset_dir": paths["datasets"],
                "output_dir": paths["vanilla"],
                "seed": settings.seed,
                **settings.vanilla_overrides,
            },
            paths["logs"] / "vanilla.log",
            threads=CPU_COUNT,
        ),
        f"vanilla model (llamafactory-cli train {vanilla_recipe.name}) -> {paths['vanilla']}",
    )

    def train_run(name: str) -> str:
        recipe = recipes / f"tiny_{name}.yaml"
        key = hashlib.sha256(
            (vanilla_key + recipe.read_text() + json.dumps(settings.unlearn_overrides, sort_keys=True)).encode()
        ).hexdigest()[:16]
        step(
            f"run_{name}",
            key,
            lambda: llamafactory_train(
                recipe,
                {
                    "model_name_or_path": paths["vanilla"],
                    "dataset_dir": paths["datasets"],
                    "output_dir": paths["runs"] / name,
                    "seed": settings.seed,
                    **settings.unlearn_overrides,
                },
                paths["logs"] / f"{name}.log",
                threads=max(1, CPU_COUNT // max(1, settings.parallel)),
            ),
            f"unlearning {display_name(name)} (llamafactory-cli train {recipe.name})",
        )
        return key

    with ThreadPoolExecutor(max_workers=max(1, settings.parallel)) as pool:
        run_keys = dict(zip(settings.runs, pool.map(train_run, settings.runs), strict=True))  # re-raises failures

    report = evaluate_and_report(settings, paths, progress, cache, vanilla_key, run_keys)
    return report


def evaluate_and_report(
    settings: DemoSettings,
    paths: dict[str, Path],
    progress: Progress,
    cache: StepCache,
    vanilla_key: str,
    run_keys: dict[str, str],
) -> Path:
    eval_settings = EvalSettings(
        data_dir=paths["data"],
        judge=JudgeConfig(),
        harmful_samples=settings.harmful_samples,
        max_gen_toks=settings.max_gen_toks,
        limit=settings.eval_limit,
        batch_size=settings.eval_batch_size,
        seed=settings.seed,
    )
    eval_key = settings.fingerprint("harmful_samples", "max_gen_toks", "eval_limit", "seed") + vanilla_key
    # (spec, fingerprint of what it evaluates): the vanilla model, then each run's adapter
    jobs = [(RunSpec("vanilla", paths["vanilla"]), eval_key)]
    jobs += [
        (RunSpec(display_name(name), paths["vanilla"], paths["runs"] / name), eval_key + run_keys[name])
        for name in settings.runs
    ]
    evaluator: Evaluator | None = None
    for spec, run_key in jobs:
        name = f"eval_{run_folder_name(spec.name)}"
        if cache.is_done(name, run_key):
            continue
        evaluator = evaluator or Evaluator(eval_settings)
        evaluator.evaluate(spec, paths["eval"])
        cache.mark(name, run_key)
        progress(f"evaluated {spec.name} with the safeeraser lm-eval group", step_done=False)
    progress(f"{len(jobs)} models evaluated -> {paths['eval']}")
    run_dirs = [paths["eval"] / run_folder_name(spec.name) for spec, _ in jobs]
    report = write_report(run_dirs, paths["eval"] / "report.md")
    outcome = describe_outcome([load_run_results(d) for d in run_dirs], settings)
    final = settings.out_dir.resolve() / "report.md"
    write_text_atomic(final, outcome_header(settings) + outcome + "\n" + Path(report).read_text())
    progress(f"report -> {final}")
    return final


