"""Shared fixtures: a tiny LLaVA built offline, synthetic SafeEraser data, LLaMA-Factory runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this venv first on PATH (torchrun), offline, quiet."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def llamafactory_train(config: dict, workdir: Path, name: str = "run", timeout: int = 900, **env: str) -> Path:
    """Write ``config`` as YAML and run ``llamafactory-cli train`` on it; returns output_dir."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"output_dir": str(workdir / name), **config}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli([str(BIN / "llamafactory-cli"), "train", str(path)], cwd=workdir, timeout=timeout, **env)
    (workdir / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(
            f"llamafactory-cli train {name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return Path(config["output_dir"])


def log_history(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "trainer_state.json").read_text())["log_history"]


# Plain SGD without clipping or shuffling: the weights after a few steps read out the summed gradients, so runs
# that split one global batch differently (processes, accumulation, ZeRO) must end at the same weights. The rate is
# small enough that 4 steps do not amplify float rounding chaotically (Qwen2-VL NPO+PD at 0.1: splits 1e-7 apart
# after 2 steps, 3e-5 after 4), large enough that the weights move ~0.07 (>> the tolerances).
SGD_READOUT = {
    "optim": "sgd",
    "learning_rate": 0.02,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0e9,
    "disable_shuffling": True,
    "ddp_timeout": 300,
}


def base_train_config(model_dir: Path, dataset_dir: Path, **overrides) -> dict:
    """A small CPU training config in LLaMA-Factory's YAML keys."""
    config = {
        "model_name_or_path": str(model_dir),
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "dataset_dir": str(dataset_dir),
        "template": "llava",
        "cutoff_len": 256,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1.0e-3,
        "num_train_epochs": 1.0,
        "lr_scheduler_type": "constant",
        "report_to": "none",
        "seed": 233,
    }
    config.update(overrides)
    return config


def build_unlearning_trainer(model_dir: Path, dataset_dir: Path, output_dir: Path, **keys):
    """The `stage: unlearn` trainer LLaMA-Factory's parsed arguments build (data, model, collator), not trained."""
    from llamafactory_safeeraser.hook.stage import parse_train_args
    from llamafactory_safeeraser.unlearn.workflow import create_unlearning_trainer

    config = base_train_config(
        model_dir, dataset_dir, stage="unlearn", dataset="safeeraser_forget", output_dir=str(output_dir)
    )
    config.update(keys)
    model_args, data_args, training_args, finetuning_args, _ = parse_train_args(config)
    return create_unlearning_trainer(model_args, data_args, training_args, finetuning_args)


def build_unlearning_dataset(config: dict) -> tuple:
    """(dataset, tokenizer) of the `unlearn` stage for a train config, as its workflow loads them; no model."""
    from llamafactory_safeeraser.hook.stage import parse_train_args
    from llamafactory_safeeraser.integration import llamafactory as lf
    from llamafactory_safeeraser.unlearn.registry import get_method
    from llamafactory_safeeraser.unlearn.workflow import load_unlearning_sets

    model_args, data_args, training_args, finetuning_args, _ = parse_train_args(config)
    tokenizer_module = lf.load_tokenizer(model_args)
    template = lf.get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    method = get_method(finetuning_args.unlearn_method)
    dataset = load_unlearning_sets(
        method, template, model_args, data_args, training_args, finetuning_args, tokenizer_module
    )
    return dataset, tokenizer_module["tokenizer"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llamafactory_safeeraser.offline.tiny_models import write_tiny_model

    out = tmp_path_factory.mktemp("models") / "tiny-llava"
    write_tiny_model(out, family="llava", size="tiny", seed=0)
    return out


@pytest.fixture(scope="session")
def lora_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights, so that loading it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 1.0)
    out = tmp_path_factory.mktemp("adapters") / "npo"
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def family_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``family_model_dir(family)``: a model family's tiny checkpoint, built on first use (llava: tiny_model_dir)."""
    from llamafactory_safeeraser.offline.tiny_models import write_tiny_model

    built = {"llava": tiny_model_dir}

    def get(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp("models") / f"tiny-{family}"
            write_tiny_model(out, family=family, size="tiny", seed=0)
            built[family] = out
        return built[family]

    return get


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all_train.json (24 records) and all_val.json (12 records) with images."""
    from llamafactory_safeeraser.offline.synthetic import write_synthetic_benchmark

    out = tmp_path_factory.mktemp("data") / "safeeraser"
    write_synthetic_benchmark(out, images_per_concept=2, seed=233)
    return out


@pytest.fixture(scope="session")
def prepared_dir(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LLaMA-Factory datasets (dataset_dir) derived from the synthetic train file."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets

    out = tmp_path_factory.mktemp("prepared") / "lf"
    prepare_datasets(synthetic_dir / "all_train.json", out)
    return out


def vanilla_sft_config(model_dir: Path, dataset_dir: Path, **overrides) -> dict:
    """Full fine-tune into a 'vanilla' model that complies: harmful answers, benign SD answers, retain answers."""
    return base_train_config(
        model_dir,
        dataset_dir,
        stage="sft",
        finetuning_type="full",
        dataset="safeeraser_forget,safeeraser_pd,safeeraser_retain",
        per_device_train_batch_size=8,
        learning_rate=3.0e-3,
        num_train_epochs=12.0,
        lr_scheduler_type="cosine",
        logging_steps=10,
        **overrides,
    )


@pytest.fixture(scope="session")
def vanilla_model_dir(tiny_model_dir: Path, prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after SFT on the synthetic forget / PD / retain sets (the unlearning start point)."""
    workdir = tmp_path_factory.mktemp("vanilla")
    return llamafactory_train(vanilla_sft_config(tiny_model_dir, prepared_dir), workdir, "vanilla")


def answer_nll(model_dir: Path, rows: list[dict], adapter_dir: Path | None = None) -> float:
    """Mean answer-token NLL of LLaMA-Factory-format rows, computed directly with transformers.

    Independent of the plugin's loss code: the prompt is rendered with the `llava` template text,
    prompt and answer are encoded separately (as LLaMA-Factory does) and the model runs row by row.
    """
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from llamafactory_safeeraser.offline.tiny_models.llava import LLAVA_SYSTEM

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    tokenizer = processor.tokenizer
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            prompt = f"{LLAVA_SYSTEM}USER: {row['instruction']} ASSISTANT:"
            image = Image.open(row["images"][0]).convert("RGB")
            prompt_inputs = processor(images=[image], text=[prompt], return_tensors="pt")
            answer_ids = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            input_ids = torch.cat([prompt_inputs["input_ids"], torch.tensor([answer_ids])], dim=1)
            logits = model(input_ids=input_ids, pixel_values=prompt_inputs["pixel_values"]).logits[0]
            start = prompt_inputs["input_ids"].shape[1]
            logps = torch.log_softmax(logits[start - 1 : -1].double(), dim=-1)
            total -= float(logps[torch.arange(len(answer_ids)), torch.tensor(answer_ids)].sum())
            count += len(answer_ids)
    return total / count


# ----- shape models (the `shape` tier: scripts/test.sh shape) ------------------------------------------
SHAPE_IMAGE_SIZE = 336  # the synthetic images enlarged to LLaVA-1.5's input size (Qwen2-VL: 144 image tokens)


@pytest.fixture(scope="session")
def shape_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """``shape_model_dir(family, size)``: a shape checkpoint with the fewest layers, built on first use."""
    from llamafactory_safeeraser.offline.cpu_recipe import CPU_DTYPE
    from llamafactory_safeeraser.offline.tiny_models import write_tiny_model

    built: dict[tuple[str, str], Path] = {}

    def get(family: str, size: str) -> Path:
        if (family, size) not in built:
            out = tmp_path_factory.mktemp("shape_models") / f"{family}-{size}"
            write_tiny_model(out, family=family, size=size, seed=0, dtype=CPU_DTYPE)
            built[(family, size)] = out
        return built[(family, size)]

    return get


@pytest.fixture(scope="session")
def shape_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(benchmark folder, LLaMA-Factory datasets): the synthetic benchmark of ``synthetic_dir`` at 336 x 336 px."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets
    from llamafactory_safeeraser.offline.synthetic import write_synthetic_benchmark

    root = tmp_path_factory.mktemp("shape_data")
    write_synthetic_benchmark(root / "data", images_per_concept=2, seed=233, image_size=SHAPE_IMAGE_SIZE)
    prepare_datasets(root / "data" / "all_train.json", root / "lf")
    return root / "data", root / "lf"


@pytest.fixture(scope="session")
def shape_processor_dir(tmp_path_factory: pytest.TempPathFactory):
    """``shape_processor_dir(family)``: a shape model's config, tokenizer and processor without weights (seconds to
    build): enough for LLaMA-Factory's tokenization and for the processor lm-eval calls."""
    from llamafactory_safeeraser.offline.tiny_models.shapes import write_shape_skeleton
    from llamafactory_safeeraser.offline.tiny_models.sizes import SHAPE_SIZES

    sizes = {family: shapes[0] for family, shapes in SHAPE_SIZES.items() if shapes}  # llava: shape7b
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp("shape_processors") / family
            built[family] = write_shape_skeleton(out, family, sizes[family])
        return built[family]

    return get
