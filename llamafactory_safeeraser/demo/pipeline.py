"""The CPU demo pipeline: SafeEraser's finding in miniature, through the same paths a GPU user takes.

For each seed (each step reused on a re-run when its inputs did not change):
 1. synthetic SafeEraser data;  2. a small LLaVA built from a config;  3. LLaMA-Factory datasets;
 4. a "vanilla" model that complies (plain `llamafactory-cli train`, SFT);
 5-. the unlearning runs, each method without and with PD (`llamafactory-cli train yaml/tiny_*.yaml`);
 then the `safeeraser` lm-eval group on the vanilla model and every run (``--attacks``: also the attack group,
 and each model again after 8- and 4-bit quantization; the keys are each seed's ``eval/eval.yaml``).
Last, report.md and demo_results.json: every number a mean ± sd over the seeds, and the measured outcome (and,
when something was attacked, the Robustness section with its plot ``report_robustness.png``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..evaluation.report import robustness_plot_path, write_report
from ..evaluation.results import RunSpec, load_run_results, pd_pairs, quantized_of, run_folder_name
from ..evaluation.robustness import collect, section
from ..evaluation.robustness_plot import plot_robustness
from ..evaluation.runner import RunResult, evaluate_runs
from ..fileio import write_json_atomic, write_text_atomic
from ..offline.synthetic import write_synthetic_benchmark
from ..offline.tiny_models import write_tiny_model
from ..relearn.report import recovery_table
from . import summary
from .eval_config import eval_folders, seed_results, write_eval_config
from .outcome import describe_outcome, outcome_header
from .relearning import relearn_seed, write_pooled_report
from .settings import ATTACK_QUANTIZATION_BITS, ATTACK_TASKS, CPU_COUNT, DemoSettings, display_name, recipe_dir
from .steps import Progress, StepCache, llamafactory_train, write_demo_datasets

RESULTS_FILE = "demo_results.json"
RELEARN_REPORT = "relearn/report.md"


def run_demo(settings: DemoSettings) -> Path:
    """Every seed's pipeline, then the report over seeds; returns the path of report.md."""
    out = settings.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    recipes = recipe_dir(settings)
    started = time.time()
    # per seed: data, model, datasets, vanilla; the runs; the evaluation; the relearning; plus the report
    progress = Progress(total=len(settings.seeds) * (4 + len(settings.runs) + 1 + bool(settings.relearn)) + 1)
    write_json_atomic(out / "settings.json", {**settings.recorded(), "out_dir": str(out), "recipes": str(recipes)})
    seed_dirs = {seed: out / f"seed-{seed}" for seed in settings.seeds}
    per_seed = {seed: run_seed(settings, seed, folder, recipes, progress) for seed, folder in seed_dirs.items()}
    pairs = pd_pairs([display_name(run) for run in settings.runs])
    results = summary.aggregate(per_seed, pairs)
    results[summary.META_KEY] = summary.meta(settings.seeds, time.time() - started, settings.recorded())
    write_json_atomic(out / RESULTS_FILE, results)
    final = out / "report.md"
    studies = None
    if settings.relearn:
        studies = write_pooled_report(settings, list(seed_dirs.values()), out / RELEARN_REPORT)
    robust_lines = write_robustness(settings, list(seed_dirs.values()), studies or [], final)
    write_text_atomic(final, render_report(settings, results, pairs, studies, robust_lines))
    progress(f"report -> {final} (mean ± sd over {len(settings.seeds)} seed(s); per seed: seed-*/eval/report.md)")
    return final


def write_robustness(settings: DemoSettings, seed_dirs: list[Path], studies: list[dict], report: Path) -> list[str]:
    """The Robustness section over every seed's evaluations (and the pooled relearning studies), with its plot
    beside ``report``; no lines (and no plot) when nothing was attacked, quantized or relearned."""
    robustness = collect([run for folder in seed_dirs for run in seed_results(settings, folder / "eval")], studies)
    plot = robustness_plot_path(report)
    return section(robustness, plot.name if plot_robustness(robustness, plot) else None)


def render_report(
    settings: DemoSettings,
    results: dict,
    pairs: list[tuple[str, str]],
    relearn_studies: list[dict] | None = None,
    robustness: Sequence[str] = (),
) -> str:
    """The demo's report.md (``robustness``: the lines of its Robustness section, over every seed)."""
    seeds = ", ".join(str(seed) for seed in settings.seeds)
    relearning = ""
    if relearn_studies:
        relearning = (
            "\n## Relearning (mean ± sd over seeds)\n\n"
            + "\n".join(recovery_table(relearn_studies))
            + f"\n\nCurves and each run's table: `{RELEARN_REPORT}`.\n"
        )
    return (
        outcome_header(settings)
        + describe_outcome(results, pairs)
        + f"\n## Main results (mean ± sd over seeds {seeds}; percent)\n\n"
        + summary.main_table(results)
        + "\n\n## Effect of prompt decouple (PD)\n\n"
        + summary.pd_table(results, pairs)
        + "\n\nPer seed: `seed-<seed>/eval/report.md` (paper-style and per-category tables, plot).\n"
        + relearning
        + "".join(line + "\n" for line in robustness)
    )


def run_seed(settings: DemoSettings, seed: int, out: Path, recipes: Path, progress: Progress) -> dict[str, dict]:
    """One seed's data, models, runs and evaluation; returns run name -> results.json summary."""
    cache = StepCache(out)
    paths = {
        "data": out / "data",
        "base": out / "models/base",
        "datasets": out / "datasets",
        "vanilla": out / "vanilla",
        "runs": out / "runs",
        "eval": out / "eval",
        "logs": out / "logs",
        "relearn": out / "relearn",
    }

    def step(name: str, fingerprint: str, action: Callable[[], None], message: str) -> None:
        message = f"seed {seed}: {message}"
        if cache.is_done(name, fingerprint):
            progress(f"{message} (reused)")
            return
        cache.clear(name)
        action()
        cache.mark(name, fingerprint)
        progress(message)

    data_key = settings.fingerprint(seed, "images_per_concept", "world")
    step(
        "data",
        data_key,
        lambda: write_synthetic_benchmark(
            paths["data"], settings.images_per_concept, seed=seed, overwrite=True, world=settings.world
        ),
        f"synthetic SafeEraser data -> {paths['data']}",
    )
    base_key = settings.fingerprint(seed, "model_size")
    step(
        "base",
        base_key,
        lambda: write_tiny_model(paths["base"], size=settings.model_size, seed=seed, overwrite=True),
        f"{settings.model_size} LLaVA built from a config -> {paths['base']}",
    )
    datasets_key = data_key + settings.fingerprint(seed, "world")
    step(
        "datasets",
        datasets_key,
        lambda: write_demo_datasets(paths["data"], paths["datasets"], seed, settings.world),
        f"LLaMA-Factory datasets -> {paths['datasets']}",
    )

    vanilla_recipe = recipes / "tiny_vanilla_sft.yaml"
    vanilla_key = _hash(datasets_key, base_key, vanilla_recipe.read_text(), settings.vanilla_overrides)
    step(
        "vanilla",
        vanilla_key,
        lambda: llamafactory_train(
            vanilla_recipe,
            {
                "model_name_or_path": paths["base"],
                "dataset_dir": paths["datasets"],
                "output_dir": paths["vanilla"],
                "overwrite_output_dir": True,  # the demo's own folder: a changed step is trained again
                "seed": seed,
                **settings.vanilla_overrides,
            },
            paths["logs"] / "vanilla.log",
            threads=CPU_COUNT,
        ),
        f"vanilla model (llamafactory-cli train {vanilla_recipe.name}) -> {paths['vanilla']}",
    )

    def train_run(name: str) -> str:
        recipe = recipes / f"tiny_{name}.yaml"
        key = _hash(vanilla_key, recipe.read_text(), settings.unlearn_overrides)
        step(
            f"run_{name}",
            key,
            lambda: llamafactory_train(
                recipe,
                {
                    "model_name_or_path": paths["vanilla"],
                    "dataset_dir": paths["datasets"],
                    "output_dir": paths["runs"] / name,
                    "overwrite_output_dir": True,
                    "seed": seed,
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
    summaries = evaluate_seed(settings, seed, paths, progress, cache, vanilla_key, run_keys)
    if settings.relearn:
        relearn_key = _hash(
            vanilla_key,
            [run_keys.get(name) for name in settings.relearn],
            settings.fingerprint(seed, "relearn", "relearn_steps", "harmful_samples", "max_gen_toks"),
        )
        names = ", ".join(display_name(name) for name in settings.relearn)
        step(
            "relearn",
            relearn_key,
            lambda: relearn_seed(settings, seed, paths, lambda line: progress(f"seed {seed}: {line}", step_done=False)),
            f"relearning attack on {names}",
        )
    return summaries


def evaluate_seed(
    settings: DemoSettings,
    seed: int,
    paths: dict[str, Path],
    progress: Progress,
    cache: StepCache,
    vanilla_key: str,
    run_keys: dict[str, str],
) -> dict[str, dict]:
    plain_settings = write_eval_config(settings, seed, paths)
    attack_settings = write_eval_config(settings, seed, paths, attacked=True) if settings.attacks else None
    eval_key = settings.fingerprint(seed, "harmful_samples", "max_gen_toks", "eval_limit") + vanilla_key
    # an attacked model's evaluation differs from a plain one; the other models' stay valid with or without it
    attacked_key = _hash("attacks", ATTACK_TASKS, ATTACK_QUANTIZATION_BITS)
    # (spec, fingerprint of what it evaluates): the vanilla model, then each run's adapter
    jobs = [(RunSpec("vanilla", paths["vanilla"]), eval_key)]
    jobs += [
        (RunSpec(display_name(name), paths["vanilla"], paths["runs"] / name), eval_key + run_keys[name])
        for name in settings.runs
    ]
    jobs = [(spec, key + attacked_key if settings.attacked(spec.name) else key) for spec, key in jobs]
    pending = [(spec, key) for spec, key in jobs if not cache.is_done(f"eval_{run_folder_name(spec.name)}", key)]
    # a run's step is done when its folder and (attacked) its quantized runs' folders are written
    waiting = {spec.name: {f.name for f in eval_folders(settings, paths["eval"], [spec.name])} for spec, _ in pending}
    keys = {spec.name: key for spec, key in pending}
    for eval_settings, attacked in ((plain_settings, False), (attack_settings, True)):
        specs = [spec for spec, _ in pending if settings.attacked(spec.name) == attacked]
        if not specs:
            continue
        tasks = eval_settings.tasks
        groups = " and ".join(tasks) + f" lm-eval group{'s' if len(tasks) > 1 else ''}"

        def finished(result: RunResult, groups: str = groups) -> None:
            base = quantized_of(result.run.name)[0]
            waiting[base].discard(result.folder.name)
            if not waiting[base]:
                cache.mark(f"eval_{run_folder_name(base)}", keys[base])
                progress(f"seed {seed}: evaluated {base} with the {groups}", step_done=False)

        # one lm-eval load per settings; each run's files are the demo's own, replaced when the step is redone
        evaluate_runs(specs, eval_settings, paths["eval"], report=False, progress=finished, overwrite=True)
    write_report(eval_folders(settings, paths["eval"], [spec.name for spec, _ in jobs]), paths["eval"] / "report.md")
    progress(f"seed {seed}: {len(jobs)} models evaluated -> {paths['eval']}")
    return {spec.name: load_run_results(paths["eval"] / run_folder_name(spec.name))["summary"] for spec, _ in jobs}


def _hash(*parts: object) -> str:
    text = "".join(part if isinstance(part, str) else json.dumps(part, sort_keys=True) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
