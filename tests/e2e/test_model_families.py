"""Model families besides LLaVA-1.5: Qwen2-VL and Qwen2.5-VL (template `qwen2_vl`), Qwen3-VL (`qwen3_vl`),
Llama-3.2-Vision (template `mllama`), Gemma 3 (template `gemma3`), LLaVA-NeXT 1.6 (template `llava_next`) and
InternVL 3 in transformers' format (template `intern_vl`).

Per family: the tiny checkpoint loads with the Auto classes, sees its image, generates and is
deterministic per seed; its chat template is LLaMA-Factory's template; the 7B-class recipe parses; a
real `llamafactory-cli train` NPO+PD run with the recipe's model-specific keys; a real lm-eval run of the
`safeeraser` group on the base model and on the adapter that run saved.
(Prompt-token parity with training: tests/evaluation/test_eval_prompt_format.py, for every family.)
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from conftest import BIN, REPO, base_train_config, llamafactory_train, log_history, run_cli
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import yaml
from llamafactory_safeeraser.hook.stage import parse_train_args
from llamafactory_safeeraser.integration.template_text import render_user_prompt
from llamafactory_safeeraser.offline.tiny_models import FAMILIES, write_tiny_model
from llamafactory_safeeraser.offline.tiny_models.gemma3 import GEMMA3_TOKENS
from llamafactory_safeeraser.offline.tiny_models.intern_vl import INTERN_VL_TOKENS
from llamafactory_safeeraser.offline.tiny_models.llava import LLAVA_TOKENS
from llamafactory_safeeraser.offline.tiny_models.mllama import MLLAMA_TOKENS
from llamafactory_safeeraser.offline.tiny_models.qwen2_vl import QWEN2_VL_TOKENS
from llamafactory_safeeraser.offline.tiny_models.qwen3_vl import THINK_TOKENS

NEW_FAMILIES = ("qwen2_vl", "mllama", "gemma3", "llava_next", "intern_vl", "qwen2_5_vl", "qwen3_vl")
QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")  # image pads inside vision markers, counted by image size
SPECIAL_TOKENS = {
    "qwen2_vl": QWEN2_VL_TOKENS.special_tokens,
    "mllama": MLLAMA_TOKENS.special_tokens,
    "gemma3": GEMMA3_TOKENS.special_tokens,
    "llava_next": LLAVA_TOKENS.special_tokens,
    "intern_vl": INTERN_VL_TOKENS.special_tokens,
    "qwen2_5_vl": QWEN2_VL_TOKENS.special_tokens,
    "qwen3_vl": (*QWEN2_VL_TOKENS.special_tokens, *THINK_TOKENS),
}
RECIPES = {
    "qwen2_vl": REPO / "yaml/qwen2vl_7b_npo_pd.yaml",
    "mllama": REPO / "yaml/llama32v_11b_npo_pd.yaml",
    "gemma3": REPO / "yaml/gemma3_12b_npo_pd.yaml",
    "llava_next": REPO / "yaml/llavanext_7b_npo_pd.yaml",
    "intern_vl": REPO / "yaml/internvl3_8b_npo_pd.yaml",
    "qwen2_5_vl": REPO / "yaml/qwen25vl_7b_npo_pd.yaml",
}
# Qwen3-VL's recipe trains the Instruct checkpoint with `qwen3_vl_nothink`; the tiny model's chat template renders
# `qwen3_vl` (the family's template), so its CPU run takes the recipe's other choices with the family's template
QWEN3_VL_RECIPE = REPO / "yaml/qwen3vl_8b_npo_pd.yaml"
# recipe keys that carry the family's model-specific choices; the CPU training run below uses them as is
RECIPE_MODEL_KEYS = (
    "template", "lora_target", "additional_target", "freeze_vision_tower", "image_max_pixels", "crop_to_patches"
)  # fmt: skip
RED, BLUE = Image.new("RGB", (32, 32), (200, 10, 10)), Image.new("RGB", (32, 32), (10, 10, 200))


@pytest.fixture(scope="module", params=list(NEW_FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(family: str, family_model_dir) -> Path:
    return family_model_dir(family)


def encode(processor, text: str, image: Image.Image) -> dict:
    return processor(images=[image], text=[text], return_tensors="pt")


def model_keys(family: str) -> dict:
    recipe = yaml.safe_load((RECIPES.get(family) or QWEN3_VL_RECIPE).read_text())
    keys = {key: recipe[key] for key in RECIPE_MODEL_KEYS if key in recipe}
    return keys if family in RECIPES else {**keys, "template": FAMILIES[family]}


def image_prompt(family: str, processor, question: str = "What shape is the main object in this image?") -> str:
    """The LLaMA-Factory prompt with the model's image token in place of <image>, as hf-multimodal passes it."""
    processor_token = {
        "qwen2_vl": "<|image_pad|>",
        "qwen2_5_vl": "<|image_pad|>",
        "qwen3_vl": "<|image_pad|>",
        "mllama": "<|image|>",
        "gemma3": "<image_soft_token>",
        "llava_next": "<image>",
        "intern_vl": "<IMG_CONTEXT>",
    }[family]
    prompt = render_user_prompt(FAMILIES[family], "<image>\n" + question, processor=processor)
    return prompt.replace("<image>", processor_token)


def test_round_trip_loads_sees_the_image_and_generates(family: str, model_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    assert 150_000 < sum(p.numel() for p in model.parameters()) < 500_000
    tokenizer = processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS[family]]
    assert len(set(ids)) == len(ids) and None not in ids
    for token, token_id in zip(SPECIAL_TOKENS[family], ids, strict=True):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id], token  # never split
    assert model.config.image_token_id == processor.image_token_id

    inputs = encode(processor, image_prompt(family, processor), RED)
    input_ids = inputs["input_ids"][0].tolist()
    if family == "gemma3":  # <bos> from the tokenizer; 4x4 patches pooled 2x2: 4 soft tokens inside boi ... eoi
        start = input_ids.index(tokenizer.convert_tokens_to_ids("<start_of_image>"))
        assert input_ids[0] == tokenizer.bos_token_id and input_ids.count(tokenizer.bos_token_id) == 1
        assert input_ids[start + 1 : start + 6] == [model.config.image_token_id] * 4 + [
            tokenizer.convert_tokens_to_ids("<end_of_image>")
        ]
        assert inputs["token_type_ids"][0].tolist() == [int(i == model.config.image_token_id) for i in input_ids]
    elif family in QWEN_FAMILIES:  # 4x4 patches of 8 px, merged 2x2: four pads between the vision markers
        start = input_ids.index(tokenizer.convert_tokens_to_ids("<|vision_start|>"))
        assert input_ids[start + 5] == tokenizer.convert_tokens_to_ids("<|vision_end|>")
        assert input_ids[start + 1 : start + 5] == [model.config.image_token_id] * 4
        assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    elif family == "llava_next":  # anyres: the base 32 px view and the two tiles of a 1x2 grid; 36 image tokens
        assert input_ids.count(model.config.image_token_id) == 36 and input_ids[0] != tokenizer.bos_token_id
        assert inputs["pixel_values"].shape == (1, 3, 3, 32, 32) and inputs["image_sizes"].tolist() == [[32, 32]]
    elif family == "intern_vl":  # one 32 px tile: 4 tokens between <img> and </img>; no BOS (Qwen2.5)
        start = input_ids.index(tokenizer.convert_tokens_to_ids("<img>"))
        assert input_ids[start + 1 : start + 6] == [model.config.image_token_id] * 4 + [tokenizer.end_image_token_id]
        assert input_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and tokenizer.bos_token_id is None
        assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    else:  # one <|image|>; a 32 px image is one tile (of 4 allowed), the tokens after it attend to it
        assert input_ids.count(model.config.image_token_id) == 1 and input_ids[0] == tokenizer.bos_token_id
        assert inputs["cross_attention_mask"].shape == (1, len(input_ids), 1, 4)
        assert inputs["aspect_ratio_ids"].tolist() == [[1]]

    with torch.no_grad():
        red = model(**inputs).logits[0, -1]
        blue = model(**encode(processor, image_prompt(family, processor), BLUE)).logits[0, -1]
    assert not torch.allclose(red, blue)  # the vision path reaches the language model
    first = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    again = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert first.shape[1] == inputs["input_ids"].shape[1] + 6 or tokenizer.eos_token_id in first[0].tolist()
    assert torch.equal(first, again)


@pytest.mark.parametrize("family_name", list(FAMILIES))
@pytest.mark.parametrize("system", [None, "Answer briefly."])
def test_chat_template_is_the_llamafactory_template(family_name: str, system: str | None, family_model_dir) -> None:
    """apply_chat_template gives the token ids of LLaMA-Factory's prompt (with and without a system turn)."""
    processor = AutoProcessor.from_pretrained(family_model_dir(family_name))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    chat = processor.apply_chat_template(messages, tokenize=False)
    rendered = render_user_prompt(FAMILIES[family_name], "<image>\nHi?", system, processor=processor)
    image_token = processor.image_token
    if image_token != "<image>":
        assert "<image>" not in chat
        rendered = rendered.replace("<image>", image_token)
    ours, theirs = encode(processor, chat, RED), encode(processor, rendered, RED)
    assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
    if system is not None:
        assert processor.tokenizer.encode(system, add_special_tokens=False)[0] in ours["input_ids"][0].tolist()


@pytest.mark.parametrize("family_name", QWEN_FAMILIES)
def test_qwen_tokenizers_have_the_released_special_token_behaviour(family_name: str, family_model_dir) -> None:
    """No BOS on encode; EOS <|im_end|> (LLaMA-Factory's replace_eos), pad <|endoftext|>; Qwen3-VL's thought
    words are added tokens that decoding keeps, and its template has no default system turn."""
    processor = AutoProcessor.from_pretrained(family_model_dir(family_name))
    tokenizer = processor.tokenizer
    assert tokenizer.bos_token is None
    assert tokenizer("Hi")["input_ids"] == tokenizer.encode("Hi", add_special_tokens=False)  # nothing added
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    chat = processor.apply_chat_template([{"role": "user", "content": "Hi?"}], tokenize=False)
    assert chat.startswith("<|im_start|>user\n") == (family_name == "qwen3_vl")
    if family_name == "qwen3_vl":
        ids = tokenizer.encode("<think>\n\n</think>\n\n", add_special_tokens=False)
        assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>\n\n</think>\n\n"


def noise_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Every patch different, so that which patches attend to which changes the features."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def image_features(model, processor, image: Image.Image) -> torch.Tensor:
    inputs = processor.image_processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        return torch.cat(model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output)


def test_qwen2_5_vl_vision_tower_attends_within_windows(family_model_dir) -> None:
    """32 px windows (2x2 merged tokens): a 32 px image is one window, as if attention were full; a 64 px image four
    windows (a 48x32 one two, the second padded); the last block attends across the whole image."""
    model_dir = family_model_dir("qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    visual = model.model.visual
    assert (model.config.vision_config.window_size, visual.fullatt_block_indexes) == (32, [1])

    def patches_per_window(grid: list[int]) -> list[int]:
        bounds = visual.get_window_index(torch.tensor([grid]))[1]
        return [end - start for start, end in pairwise(bounds) if end > start]  # empty pad windows left out

    assert patches_per_window([1, 8, 8]) == [16, 16, 16, 16] and patches_per_window([1, 4, 6]) == [16, 8]
    small, large = noise_image((32, 32)), noise_image((64, 64))
    windowed = image_features(model, processor, small), image_features(model, processor, large)
    visual.fullatt_block_indexes = [0, 1]
    full = image_features(model, processor, small), image_features(model, processor, large)
    assert windowed[1].shape == (16, model.config.text_config.hidden_size)
    assert torch.allclose(windowed[0], full[0], atol=1e-6) and not torch.allclose(windowed[1], full[1], atol=1e-4)


def test_qwen3_vl_deepstack_features_reach_the_language_model(family_model_dir) -> None:
    """Vision block 0's merged features are added to language-model layer 0 at the image tokens (deepstack)."""
    model_dir = family_model_dir("qwen3_vl")
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    assert model.config.vision_config.deepstack_visual_indexes == [0]
    inputs = encode(processor, image_prompt("qwen3_vl", processor), noise_image((48, 32)))
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    pixels = processor.image_processor(images=[noise_image((48, 32))], return_tensors="pt")
    with torch.no_grad():
        vision = model.model.visual(pixels["pixel_values"], grid_thw=pixels["image_grid_thw"])
        assert [tuple(feature.shape) for feature in vision.deepstack_features] == [(image_tokens, 64)] == [(6, 64)]
        before = model(**inputs).logits
        for parameter in model.model.visual.deepstack_merger_list.parameters():
            parameter.zero_()
        after = model(**inputs).logits
    first_image_token = int((inputs["input_ids"][0] == model.config.image_token_id).nonzero()[0])
    # causal: the tokens before the image see no image feature, the others change
    assert torch.equal(before[:, :first_image_token], after[:, :first_image_token])
    assert not torch.allclose(before[:, first_image_token:], after[:, first_image_token:])


def test_builder_is_deterministic_per_seed(family: str, tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "a", family=family, seed=3)
    write_tiny_model(tmp_path / "b", family=family, seed=3)
    write_tiny_model(tmp_path / "c", family=family, seed=4)
    files = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert {"model.safetensors", "tokenizer.json", "config.json", "processor_config.json"} <= set(files)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a/model.safetensors").read_bytes() != (tmp_path / "c/model.safetensors").read_bytes()
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "c/tokenizer.json").read_bytes()


def test_cli_builds_the_same_checkpoint(tmp_path: Path) -> None:
    """`safeeraser make-tiny-model --family mllama` (one family: each run pays the start-up of a process)."""
    proc = run_cli([str(BIN / "safeeraser"), "make-tiny-model", "--family", "mllama", "--out", str(tmp_path / "cli")])
    assert proc.returncode == 0, proc.stderr
    assert "wrote mllama/tiny model with" in proc.stdout
    write_tiny_model(tmp_path / "api", family="mllama", seed=0)
    for path in (tmp_path / "cli").iterdir():
        assert path.read_bytes() == (tmp_path / "api" / path.name).read_bytes(), path.name


def test_only_the_tiny_and_shape_sizes_are_built_for_new_families(family: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown size 'demo' for family"):
        write_tiny_model(tmp_path / "m", family=family, size="demo")


def test_cli_rejects_a_size_the_family_lacks_with_one_line(tmp_path: Path) -> None:
    args = ["make-tiny-model", "--family", "qwen2_vl", "--size", "small", "--out", str(tmp_path / "m")]
    proc = run_cli([str(BIN / "safeeraser"), *args], timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "safeeraser: error: unknown size 'small' for family 'qwen2_vl'; choose one of tiny, shape7b"
    ]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("family_name", list(RECIPES))
def test_recipe_names_the_model_and_its_llamafactory_template(
    family_name: str, family_model_dir, prepared_dir, tmp_path
):
    from llamafactory.extras.constants import DEFAULT_TEMPLATE, SUPPORTED_MODELS

    config = yaml.safe_load(RECIPES[family_name].read_text())
    reference = yaml.safe_load((REPO / "yaml/llava7b_npo_pd.yaml").read_text())
    # LLaMA-Factory's own model table maps the hub id to the template
    names = [name for name, sources in SUPPORTED_MODELS.items() if config["model_name_or_path"] in sources.values()]
    assert names and {DEFAULT_TEMPLATE[name] for name in names} == {config["template"]} == {FAMILIES[family_name]}
    # the instruction-tuned checkpoint (Gemma's "-it"; LLaVA-NeXT's and InternVL's transformers-format "-hf" ones are)
    assert config["model_name_or_path"].endswith(("-Instruct", "-it", "-hf"))
    same_as_reference = ("lora_rank", "lora_alpha", "lora_dropout", "learning_rate", "num_train_epochs", "npo_beta")
    same_as_reference += ("per_device_train_batch_size", "gradient_accumulation_steps", "seed", "pd_weight")
    same_as_reference += ("stage", "unlearn_method", "dataset", "pd_dataset", "freeze_vision_tower", "lora_target")
    assert {key: config[key] for key in same_as_reference} == {key: reference[key] for key in same_as_reference}
    assert Path(REPO / config["deepspeed"]).is_file()

    # LLaMA-Factory's own parser accepts it (CPU stand-ins for the GPU-only settings)
    model_dir = family_model_dir(family_name)
    config.update(model_name_or_path=str(model_dir), dataset_dir=str(prepared_dir), output_dir=str(tmp_path))
    for gpu_only in ("deepspeed", "bf16"):
        config.pop(gpu_only)
    _, data_args, _, finetuning_args, _ = parse_train_args(config)
    assert (finetuning_args.stage, finetuning_args.unlearn_method, data_args.template) == (
        "unlearn",
        "npo",
        FAMILIES[family_name],
    )
    # the projector named in additional_target exists in the architecture
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    assert any(name.endswith(finetuning_args.additional_target[0]) for name, _ in model.named_modules())


@pytest.fixture(scope="module")
def unlearned(family: str, model_dir: Path, prepared_dir: Path, tmp_path_factory) -> Path:
    """A real `llamafactory-cli train` NPO+PD run with the family's recipe keys; returns its output_dir."""
    config = base_train_config(
        model_dir,
        prepared_dir,
        **model_keys(family),
        stage="unlearn",
        unlearn_method="npo",
        dataset="safeeraser_forget",
        pd_dataset="safeeraser_pd",
        max_samples=4,
        learning_rate=1.0e-2,  # large, so that two steps visibly change the model's outputs
    )
    return llamafactory_train(config, tmp_path_factory.mktemp(f"unlearn_{family}"), "npo_pd")


@pytest.mark.slow
def test_llamafactory_cli_unlearns_with_pd(family: str, model_dir: Path, unlearned: Path) -> None:
    history = [entry for entry in log_history(unlearned) if "loss" in entry]
    assert len(history) == 2  # 4 forget rows, batches of 2
    for entry in history:
        assert {"pd_nll", "npo_loss", "forget_nll"} <= set(entry)
    # the reference is the starting model (adapter disabled, projector restored): NPO's log-ratio starts at 0
    assert history[0]["npo_log_ratio"] == 0 and history[-1]["npo_log_ratio"] < 0

    from peft import PeftModel

    adapter_config = json.loads((unlearned / "adapter_config.json").read_text())
    assert adapter_config["modules_to_save"] == [model_keys(family)["additional_target"]]
    vision = {"mllama": "vision_model"}.get(family, "visual.blocks" if family in QWEN_FAMILIES else "vision_tower")
    assert not any(vision in name for name in adapter_config["target_modules"])  # freeze_vision_tower
    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = encode(processor, image_prompt(family, processor), RED)
    base = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    with torch.no_grad():
        before = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, unlearned).eval()
        after = tuned(**inputs).logits
    assert not torch.allclose(before, after, atol=1e-4)


@pytest.mark.slow
def test_lm_eval_runs_the_group_on_base_and_adapter(
    family: str, model_dir: Path, unlearned: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    from llamafactory_safeeraser.evaluation import EvalSettings, RunSpec, evaluate_runs

    torch.set_num_threads(1)  # tiny models gain nothing from threads on a busy 2-core box
    settings = EvalSettings(
        data_dir=synthetic_dir,
        harmful_samples=1,
        max_gen_toks=8,
        limit=1,  # one document per category subtask: 6 per task kind
        batch_size=6,
        template=FAMILIES[family],
        seed=11,
    )
    runs = [RunSpec("base", model_dir), RunSpec("NPO+PD", model_dir, unlearned)]
    evaluate_runs(runs, settings, tmp_path, report=False)
    processor = AutoProcessor.from_pretrained(model_dir)
    responses = {}
    for run in ("base", "NPO+PD"):
        results = json.loads((tmp_path / run / "results.json").read_text())
        assert results["settings"]["template"] == FAMILIES[family]
        for kind in ("efficacy", "generality", "sarr", "utility"):
            assert results["tasks"][kind]["n"] == 6
        for column, value in results["summary"].items():
            assert value is not None and 0.0 <= value <= 1.0, column
        samples = [json.loads(line) for line in (tmp_path / run / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 24
        for sample in samples:
            question = "<image>\n" + sample["question"]
            assert sample["prompt"] == render_user_prompt(FAMILIES[family], question, processor=processor)
        responses[run] = [sample["response"] for sample in samples]
    assert results["run"]["adapter"] == str(unlearned.resolve())
    assert responses["base"] != responses["NPO+PD"]  # lm-eval applied the adapter (same seed, same prompts)
