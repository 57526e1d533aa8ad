"""Both plugin registries (unlearning methods, judges) turn a plugin that fails to load into one line naming it,
and the other entries keep working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.lmeval_task.judges import registry as judges
from llamafactory_safeeraser.unlearn import registry as methods


def install_plugin(site: Path, group: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution with ``entries`` (name -> ``module:attr``) in entry-point ``group`` and its modules."""
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (dist / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)


PLUGIN_MODULES = {
    "raising_plugin": "raise RuntimeError('the plugin is broken')\n",
    "attribute_plugin": "VALUE = 1\n",
}


@pytest.fixture
def method_registry(monkeypatch, tmp_path):
    install_plugin(
        tmp_path,
        methods.ENTRY_POINT_GROUP,
        {"raises": "raising_plugin:Trainer", "missing": "attribute_plugin:NoSuchTrainer"},
        PLUGIN_MODULES,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    methods.method_names()  # the built-ins are registered (imported once per process)
    monkeypatch.setattr(methods, "_METHODS", dict(methods._METHODS))
    monkeypatch.setattr(methods, "_BROKEN", {})
    monkeypatch.setattr(methods, "_loaded", False)
    return methods


@pytest.fixture
def judge_registry(monkeypatch, tmp_path):
    install_plugin(
        tmp_path,
        judges.ENTRY_POINT_GROUP,
        {"raises": "raising_plugin:Judge", "missing": "attribute_plugin:NoSuchJudge"},
        PLUGIN_MODULES,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(judges, "_CLASSES", dict(judges._CLASSES))
    monkeypatch.setattr(judges, "_BROKEN", {})
    monkeypatch.setattr(judges, "_entry_points_loaded", False)
    return judges


@pytest.mark.parametrize(
    ("name", "why"),
    [("raises", "RuntimeError: the plugin is broken"), ("missing", "AttributeError: .*NoSuchTrainer")],
)
def test_a_broken_method_plugin_is_one_line_naming_it(method_registry, name, why):
    with pytest.raises(ValueError) as caught:
        method_registry.get_method(name)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"unlearn_method '{name}': its plugin (llamafactory_safeeraser.methods entry point)")
    assert re.search(why, message)
    assert method_registry.get_method("npo").method_name == "npo"  # the others still load
    assert name not in method_registry.method_names()


@pytest.mark.parametrize(
    ("name", "why"),
    [("raises", "RuntimeError: the plugin is broken"), ("missing", "AttributeError: .*NoSuchJudge")],
)
def test_a_broken_judge_plugin_is_one_line_naming_it(judge_registry, name, why):
    with pytest.raises(SafeEraserError) as caught:
        judge_registry.judge_class(name)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"judge '{name}': its plugin (llamafactory_safeeraser.judges entry point)")
    assert re.search(why, message)
    assert judge_registry.judge_class("rule").name == "rule"  # the others still load
    assert name not in judge_registry.judge_names()
