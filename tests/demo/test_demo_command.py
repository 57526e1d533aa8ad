"""`safeeraser demo` flags become DemoSettings: seeds, relearning (checked before anything runs)."""

from __future__ import annotations

import pytest

from llamafactory_safeeraser import cli
from llamafactory_safeeraser.demo import DemoSettings
from llamafactory_safeeraser.demo.settings import HEADLINE_MODELS
from llamafactory_safeeraser.errors import SafeEraserError


@pytest.fixture
def settings_of(monkeypatch, tmp_path):
    """The DemoSettings `safeeraser demo ARGV` would run (run_demo replaced by a recorder)."""
    report = tmp_path / "report.md"
    report.write_text("report")
    seen: list[DemoSettings] = []
    monkeypatch.setattr("llamafactory_safeeraser.demo.run_demo", lambda settings: seen.append(settings) or report)

    def parse(*argv: str) -> DemoSettings:
        assert cli.main(["demo", *argv]) == 0
        return seen[-1]

    return parse


def test_seed_count_and_list(settings_of):
    assert settings_of().seeds == (233, 234, 235)
    assert settings_of("--seeds", "1").seeds == (233,)
    assert settings_of("--seeds", "240,233").seeds == (240, 233)
    assert settings_of("--seeds", "240").seeds == (240,)  # a seed, not 240 seeds


def test_relearn_flag_without_names_takes_the_default_set(settings_of):
    assert settings_of().relearn == ()
    assert settings_of("--relearn").relearn == HEADLINE_MODELS
    assert settings_of("--relearn", "vanilla", "po_pd").relearn == ("vanilla", "po_pd")


def test_unknown_relearn_run_is_a_one_line_error(capsys):
    with pytest.raises(SafeEraserError, match=r"^--relearn: pd is not among the demo's runs \(vanilla, ga, "):
        DemoSettings(relearn=("po", "pd"))
    assert cli.main(["demo", "--relearn", "npo_pdd", "--out", "never-written"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("safeeraser: error: --relearn: npo_pdd is not among") and "\n" not in error


def test_attacks_flag_is_off_by_default(settings_of):
    assert settings_of().attacks == ()
    assert settings_of("--attacks").attacks == HEADLINE_MODELS  # as --relearn without names
    assert settings_of("--attacks", "ga_pd", "vanilla").attacks == ("ga_pd", "vanilla")
    assert settings_of("attacks=ga,ga_pd", "--seeds", "1").attacks == ("ga", "ga_pd")
