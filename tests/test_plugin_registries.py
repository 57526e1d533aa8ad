"""Both plugin registries (unlearning methods, judges) turn a plugin that fails to load into one line naming it,
and the other entries keep working."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

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


@dataclass(frozen=True)
class Registry:
    module: ModuleType
    lookup: Callable[[str], type]
    names: Callable[[], list[str]]
    error: type[Exception]  # the unlearn registry's error reaches LLaMA-Factory's argument parsing
    prefix: str  # how its message names the plugin
    working: str  # a built-in entry that must still load
    reset: dict[str, Any]  # module state to start from


REGISTRIES = {
    "methods": Registry(
        methods,
        methods.get_method,
        methods.method_names,
        ValueError,
        "unlearn_method",
        "npo",
        {"_BROKEN": {}, "_loaded": False},
    ),
    "judges": Registry(
        judges,
        judges.judge_class,
        judges.judge_names,
        SafeEraserError,
        "judge",
        "rule",
        {"_BROKEN": {}, "_entry_points_loaded": False},
    ),
}


@pytest.fixture(params=list(REGISTRIES))
def registry(request, monkeypatch, tmp_path) -> Registry:
    chosen = REGISTRIES[request.param]
    chosen.names()  # the built-ins are registered (imported once per process)
    entries = {"raises": "raising_plugin:Plugin", "missing": "attribute_plugin:NoSuchPlugin"}
    install_plugin(tmp_path, chosen.module.ENTRY_POINT_GROUP, entries, PLUGIN_MODULES)
    monkeypatch.syspath_prepend(str(tmp_path))
    registered = "_METHODS" if chosen.module is methods else "_CLASSES"
    monkeypatch.setattr(chosen.module, registered, dict(getattr(chosen.module, registered)))
    for name, value in chosen.reset.items():
        monkeypatch.setattr(chosen.module, name, value)
    return chosen


@pytest.mark.parametrize(
    ("name", "why"), [("raises", "RuntimeError: the plugin is broken"), ("missing", "AttributeError: .*NoSuchPlugin")]
)
def test_a_broken_plugin_is_one_line_naming_it(registry, name, why):
    with pytest.raises(registry.error) as caught:
        registry.lookup(name)
    message = str(caught.value)
    assert "\n" not in message
    group = registry.module.ENTRY_POINT_GROUP
    assert message.startswith(f"{registry.prefix} '{name}': its plugin ({group} entry point) failed to load")
    assert re.search(why, message)
    assert registry.lookup(registry.working) is not None  # the others still load
    assert name not in registry.names()
