"""`stage: unlearn`: load the sets, build model and trainer, train, save. Mirrors LLaMA-Factory's SFT workflow.

LLaMA-Factory's parsed arguments pass through to its functions as they are; what the stage itself reads of
them comes from ``integration.llamafactory.run_arguments`` (its field names live there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.refusals import load_refusals
from ..integration import llamafactory as lf
from .collator import UnlearningDataCollator
from .dataset import EpochCallback, RowSource, StackedUnlearningDataset, StackSettings
from .registry import get_method
from .rows import IGNORE_INDEX
from .trainer import UnlearningTrainer

logger = lf.get_logger(__name__)


def check_run_arguments(model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any) -> None:
    """Settings that need more than the unlearning keys to judge; fail before any model loads."""
    method: type[UnlearningTrainer] = get_method(finetuning_args.unlearn_method)
    run = lf.run_arguments(model_args, data_args, training_args, finetuning_args)
    if not run.do_train:
        raise ValueError("`stage: unlearn` trains; set `do_train: true`.")
    if run.streaming_packing_or_tokenized:
        raise ValueError("`stage: unlearn` does not support streaming, packing or tokenized_path.")
    if run.train_on_prompt:
        raise ValueError("`stage: unlearn` trains on answers only; remove `train_on_prompt`.")
    if run.persistent_workers:
        raise ValueError(
            "`stage: unlearn` draws retain rows and refusals anew every epoch inside the dataset, which persistent "
            "dataloader workers would not see; remove `dataloader_persistent_workers`."
        )
    if run.eval_split:
        raise ValueError("`stage: unlearn` has no eval split; evaluate with `safeeraser eval` (lm-eval) instead.")
    if (
        method.reference_row_sets
        and run.lora
        and run.ref_model is None
        and run.continues_adapter
        and not is_identity_adapter(Path(run.last_adapter))
    ):
        raise ValueError(
            f"unlearn_method '{method.method_name}' needs a reference model: with LoRA it is the base model with "
            "the adapter disabled, which is not the starting model when training continues a trained adapter "
            "(a fresh one, every lora_B zero, is fine). Merge the adapter first (llamafactory-cli export), set "
            "`create_new_adapter: true`, or set `ref_model`."
        )


def is_identity_adapter(adapter_dir: Path) -> bool:
    """Whether a saved LoRA adapter leaves the model unchanged (every lora_B zero, as a fresh adapter): training
    it, the disabled-adapter reference is still the starting model. A fixed starting adapter makes LoRA runs
    start alike however the base model was loaded (ZeRO-3's zero.Init draws from the seeded RNG; DDP does not)."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as tensors:
        keys = list(tensors.keys())
        return all(".lora_A." in key or ".lora_B." in key for key in keys) and not any(
            tensors.get_tensor(key).any() for key in keys if ".lora_B." in key
        )


def load_unlearning_sets(
    method: type[UnlearningTrainer],
    template: Any,
    model_args: Any,
    data_args: Any,
    training_args: Any,
    finetuning_args: Any,
    tokenizer_module: dict[str, Any],
) -> StackedUnlearningDataset:
    tokenizer = tokenizer_module["tokenizer"]
    run = lf.run_arguments(model_args, data_args, training_args, finetuning_args)

    def load(names: list[str]) -> RowSource:
        rows = lf.load_prompt_answer_rows(
            names, template, model_args, data_args, training_args, tokenizer, tokenizer_module.get("processor")
        )
        return RowSource(rows, ",".join(names), ",".join(lf.dataset_files(names, data_args)))

    row_sets = []
    if method.uses_forget_rows:
        row_sets.append("forget")
    refusal_answers: tuple[list[int], ...] = ()
    if method.uses_refusal_rows:  # the same forget prompts, answered with refusals
        row_sets.append("refusal")
        refusals = load_refusals(getattr(finetuning_args, "refusal_file", None))
        refusal_answers = tuple(lf.encode_answer(template, tokenizer, text) for text in refusals)
    retain = pd = None
    if method.uses_retain_rows(finetuning_args):
        row_sets.append("retain")
    if method.uses_retain_rows(finetuning_args) or finetuning_args.draws_pd_with_retain:  # the pool of the draw
        retain = load(_split(finetuning_args.retain_dataset))
    if finetuning_args.effective_pd_weight:  # `pd_weight: 0` (an ablation) leaves the PD rows out of the batch
        row_sets.append("pd")
        pd = load(_split(finetuning_args.pd_dataset))
    settings = StackSettings(
        cutoff_len=run.cutoff_len,
        eos_target=finetuning_args.eos_target,
        end_of_turn_ids=lf.end_of_turn_ids(template, tokenizer),
        seed=run.seed,
        retain_sampling=finetuning_args.retain_sampling,
        pd_pairing=finetuning_args.pd_pairing,
        # PO declares refusal_sampling; IdkDPO keeps one refusal per row (its reference log-probs are cached)
        refusal_sampling=getattr(finetuning_args, "refusal_sampling", None) or "fixed",
    )
    return StackedUnlearningDataset(
        load(run.forget_datasets), tuple(row_sets), settings, retain=retain, pd=pd, refusal_answers=refusal_answers
    )


def _split(names: str) -> list[str]:
    return [name.strip() for name in names.split(",") if name.strip()]


def create_unlearning_trainer(
    model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any, callbacks: list | None = None
) -> UnlearningTrainer:
    """Everything `stage: unlearn` builds before training: data, model, reference, collator, trainer."""
    check_run_arguments(model_args, data_args, training_args, finetuning_args)
    run = lf.run_arguments(model_args, data_args, training_args, finetuning_args)
    method = get_method(finetuning_args.unlearn_method)
    tokenizer_module = lf.load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = lf.get_template_and_fix_tokenizer(tokenizer, data_args)
    train_dataset = load_unlearning_sets(
        method, template, model_args, data_args, training_args, finetuning_args, tokenizer_module
    )
    model = lf.load_model(tokenizer, model_args, finetuning_args, run.do_train)

    # LLaMA-Factory's helper returns None for LoRA without `ref_model`: the reference is then the same
    # weights with the adapter disabled; otherwise it loads the copy that full/freeze tuning needs.
    ref_model = lf.create_ref_model(model_args, finetuning_args) if method.reference_row_sets else None

    collator = UnlearningDataCollator(
        template=template,
        model=model,
        pad_to_multiple_of=8,
        label_pad_token_id=IGNORE_INDEX,
        compute_dtype=run.compute_dtype,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        fused_forward=finetuning_args.fused_forward,
        reference_row_sets=method.reference_row_sets,
        **tokenizer_module,
    )
    trainer = method(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        data_collator=collator,
        callbacks=callbacks,
        ref_model=ref_model,
        train_dataset=train_dataset,
        **tokenizer_module,
    )
    trainer.add_callback(EpochCallback(train_dataset))
    for callback in trainer.callback_handler.callbacks:  # trainer_log.jsonl (LlamaBoard's curve) gets the terms
        if isinstance(callback, lf.LossTermsLogCallback):
            callback.term_names = trainer.logged_terms  # the trainer's live set of the terms it has logged
    keys = ", ".join(f"{param.name}={getattr(finetuning_args, param.name)}" for param in method.params)
    logger.info_rank0(
        f"Unlearning with {method.method_name}: {len(train_dataset)} forget rows; sets per step: "
        f"{', '.join(train_dataset.row_sets)}; pd_weight={trainer.pd_weight}; method keys: {keys or 'none'}"
    )
    return trainer


def run_unlearn(
    model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any, callbacks: list | None = None
) -> UnlearningTrainer:
    trainer = create_unlearning_trainer(model_args, data_args, training_args, finetuning_args, callbacks)
    train_unlearning(trainer, model_args, data_args, training_args, finetuning_args)
    return trainer


def train_unlearning(
    trainer: UnlearningTrainer, model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any
) -> None:
    """Train, save, log and plot: what follows a trainer whose configuration and data are valid."""
    run = lf.run_arguments(model_args, data_args, training_args, finetuning_args)
    train_result = trainer.train(resume_from_checkpoint=run.resume_from_checkpoint)
    trainer.save_model()
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero() and run.plot_loss:
        lf.plot_loss(run.output_dir, keys=["loss", *sorted(trainer.logged_terms)])
    lf.create_modelcard_and_push(trainer, model_args, data_args, training_args, finetuning_args)
