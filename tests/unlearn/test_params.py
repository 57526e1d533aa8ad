"""Method keys are declared once: the parsed arguments, `-h`, the checks and docs/training.md come from them."""

from __future__ import annotations

import re

import pytest
from conftest import BIN, REPO, base_train_config, run_cli

from llamafactory_safeeraser.hook.stage import arguments_class, parse_train_args
from llamafactory_safeeraser.settings import Setting
from llamafactory_safeeraser.unlearn.params import declared_keys, markdown_table
from llamafactory_safeeraser.unlearn.registry import all_methods, get_method


def parsed(tiny_model_dir, prepared_dir, tmp_path, **keys):
    config = base_train_config(
        tiny_model_dir, prepared_dir, stage="unlearn", dataset="safeeraser_forget", output_dir=str(tmp_path / "o")
    )
    config.update(keys)
    return parse_train_args(config)[3]


@pytest.mark.parametrize("method", ["ga", "gd", "kl", "po", "npo", "simnpo", "idkdpo", "rmu"])
def test_defaults_are_resolved_at_parse_time_from_the_declarations(method, tiny_model_dir, prepared_dir, tmp_path):
    needs_retain = {"gd", "kl", "po", "idkdpo", "rmu"}
    keys = {"unlearn_method": method, **({"retain_dataset": "safeeraser_retain"} if method in needs_retain else {})}
    args = parsed(tiny_model_dir, prepared_dir, tmp_path, **keys)
    own = {param.name: param.default for param in get_method(method).params}
    assert own  # every built-in declares at least one key
    for name in declared_keys(all_methods()):
        assert getattr(args, name) == own.get(name), name  # its own keys resolved, the others left unset


def test_a_value_from_yaml_wins_and_is_checked(tiny_model_dir, prepared_dir, tmp_path):
    args = parsed(
        tiny_model_dir,
        prepared_dir,
        tmp_path,
        unlearn_method="npo",
        npo_beta=0.3,
        retain_weight=0.2,
        retain_dataset="safeeraser_retain",
    )
    assert (args.npo_beta, args.retain_weight) == (0.3, 0.2)
    with pytest.raises(ValueError, match=r"`npo_beta` must be > 0\."):
        parsed(tiny_model_dir, prepared_dir, tmp_path, unlearn_method="npo", npo_beta=0.0)


def test_every_declared_key_is_an_argument_with_its_methods_in_the_help():
    fields = arguments_class().__dataclass_fields__
    for name, declarations in declared_keys(all_methods()).items():
        assert fields[name].default is None
        help_text = fields[name].metadata["help"]
        for method, param in declarations:
            assert f"{method} {'computed' if param.default is None else param.default}" in help_text
    assert "simnpo 0.0" in fields["retain_weight"].metadata["help"]  # every method that reads it


def test_cli_help_lists_the_method_keys():
    usage = run_cli([str(BIN / "llamafactory-cli"), "train", "-h"]).stdout
    for key in ("--npo_beta", "--kl_positions", "--po_reduction", "--forget_nll_guard", "--rmu_alpha"):
        assert key in usage


def test_docs_key_table_is_the_generated_one():
    text = (REPO / "docs/training.md").read_text()
    table = re.search(r"<!-- method keys: .*? -->\n(.*?)\n<!-- end of method keys -->", text, re.S).group(1)
    assert table == markdown_table(all_methods())


def test_two_methods_may_not_declare_one_key_differently():
    class A:
        method_name = "a"
        params = (Setting("shared", float, 1.0, "x", minimum=0),)

    class B:
        method_name = "b"
        params = (Setting("shared", float, 2.0, "x", minimum=0, exclusive_minimum=True),)

    class C:
        method_name = "c"
        params = (Setting("shared", float, 3.0, "another default is fine", minimum=0),)

    assert [m for m, _ in declared_keys([A, C])["shared"]] == ["a", "c"]
    with pytest.raises(TypeError, match="`shared`: unlearn_method 'b' declares it unlike 'a'"):
        declared_keys([A, B])
