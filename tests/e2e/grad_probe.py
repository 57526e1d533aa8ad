"""Train several `stage: unlearn` configs in one process, or in one torchrun job, and save what they learned.

    python grad_probe.py CONFIGS.json OUT_DIR
    torchrun --nproc_per_node 2 grad_probe.py CONFIGS.json OUT_DIR

CONFIGS.json maps a name to a LLaMA-Factory config. Each config goes through LLaMA-Factory's own argument
parsing and the plugin's trainer (DDP over gloo under torchrun, via accelerate); rank 0 then writes
OUT_DIR/<name>.safetensors with the trainable parameters before and after training. One process serves
every config, so LLaMA-Factory is imported once per rank.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def trainable(model) -> dict:
    return {
        name: param.detach().cpu().clone().contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def main() -> None:
    from safetensors.torch import save_file

    from llamafactory_safeeraser.hook.stage import parse_train_args
    from llamafactory_safeeraser.unlearn.workflow import create_unlearning_trainer

    configs = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    for name, config in configs.items():
        model_args, data_args, training_args, finetuning_args, _ = parse_train_args(config)
        trainer = create_unlearning_trainer(model_args, data_args, training_args, finetuning_args)
        before = trainable(trainer.model)
        trainer.train()
        if trainer.is_world_process_zero():
            after = trainable(trainer.accelerator.unwrap_model(trainer.model))
            tensors = {f"before.{key}": value for key, value in before.items()}
            tensors.update({f"after.{key}": value for key, value in after.items()})
            save_file(tensors, out / f"{name}.safetensors")
            lengths = [
                len(
                    trainer.train_dataset[i]["forget" if "forget" in trainer.train_dataset.row_sets else "refusal"][
                        "input_ids"
                    ]
                )
                for i in range(2)
            ]
            (out / f"{name}.json").write_text(
                json.dumps({"first_two_lengths": lengths, "steps": trainer.state.global_step})
            )
        trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
