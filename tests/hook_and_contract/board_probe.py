"""Build LlamaBoard's UI as `llamafactory-cli webui` does (no server) and print what the tests compare.

    SAFEERASER_DISABLE=1 python board_probe.py

With the start-up hook off, the plugin's LlamaBoard install runs here by hand, in three steps: none (the UI
as LLaMA-Factory builds it), with a patch target missing (as after an upgrade that moved it), and the real
install. Prints one JSON object: whether the hook patched at import, the stages and UI of each step.
"""

from __future__ import annotations

import json


def components(demo) -> list[dict]:
    """The UI's components in layout order: depth in the layout, type, label, elem_id, choices, visible."""
    config = demo.get_config_file()
    by_id = {component["id"]: component for component in config["components"]}
    found = []

    def walk(node: dict, depth: int) -> None:
        if node["id"] in by_id:  # else the root, the Blocks itself
            component = by_id[node["id"]]
            props = component.get("props", {})
            found.append(
                {
                    "depth": depth,
                    "type": component["type"],
                    "label": props.get("label"),
                    "elem_id": props.get("elem_id"),
                    "choices": [choice[0] for choice in props.get("choices") or []],
                    "visible": props.get("visible"),
                }
            )
        for child in node.get("children", []):
            walk(child, depth + 1)

    walk(config["layout"], 0)
    return found


def main() -> None:
    from llamafactory.extras.constants import TRAINING_STAGES
    from llamafactory.webui import control, interface

    from llamafactory_safeeraser.hook import board

    report = {"patched_at_import": "Unlearning" in TRAINING_STAGES}
    report["plain"] = components(interface.create_ui())

    gen_loss_plot = control.gen_loss_plot
    del control.gen_loss_plot  # a LLaMA-Factory that moved it
    board.install(interface)
    control.gen_loss_plot = gen_loss_plot
    report["stages_with_a_target_missing"] = list(TRAINING_STAGES)
    report["missing_target_ui"] = components(interface.create_ui())

    board.install(interface)
    report["stages"] = list(TRAINING_STAGES)
    report["plugin"] = components(interface.create_ui())
    print("PROBE " + json.dumps(report))


if __name__ == "__main__":
    main()
