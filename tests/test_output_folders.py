"""No command deletes or changes a file it did not write: every command, its output folder set to its input's
folder, a folder above it, the current folder and a folder holding a stranger file, with and without
--overwrite, leaves every file that was there byte-identical (and refuses in one line where it cannot write)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from llamafactory_safeeraser.cli import main
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.fileio import MANIFEST, output_folder


def hashes(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def work(synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """work/S: a SafeEraser dataset (the input); work/other/notes.txt: a stranger's file; cwd: work."""
    root = tmp_path / "work"
    shutil.copytree(synthetic_dir, root / "S")
    (root / "S" / MANIFEST).unlink()  # as the real benchmark's folder: not written by any safeeraser command
    (root / "other").mkdir()
    (root / "other" / "notes.txt").write_text("mine\n")
    (root / "other" / "all_train.json").write_text("[]\n")  # same name as respond's output, not written by it
    monkeypatch.chdir(root)
    return root


# (output folder, expected outcome without --overwrite, with --overwrite): "refused" or "written"
PLACES = {
    "the input's folder": "S",
    "a folder above the input": ".",  # work/ holds S/
    "the current folder": ".",
    "the current folder, spelled out": "{root}",
    "a folder with a stranger file": "other",
}


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_refused_in_one_line(code: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # minus progress bars
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("safeeraser: error: "), err


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("place", list(PLACES), ids=list(PLACES))
def test_prepare_and_make_demo_data_change_no_file_they_did_not_write(work, place, overwrite, capsys):
    out = PLACES[place].format(root=work)
    flag = ["--overwrite"] if overwrite else []
    before = hashes(work)
    code, err = run(["prepare", "--train", "S/all_train.json", "--out", out, *flag], capsys)
    assert_refused_in_one_line(code, err)  # every place holds an input, the current folder or a stranger
    assert "--overwrite" not in err  # passing it would not make any of these safe
    code, err = run(["make-demo-data", "--out", out, "--images-per-concept", "1", *flag], capsys)
    assert_refused_in_one_line(code, err)
    assert "--overwrite" not in err
    assert hashes(work) == before


def test_make_tiny_model_changes_no_file_it_did_not_write(work, capsys):
    before = hashes(work)
    for out in (".", str(work), "other", "S"):
        for flag in ([], ["--overwrite"]):
            code, err = run(["make-tiny-model", "--out", out, *flag], capsys)
            assert_refused_in_one_line(code, err)
            assert "--overwrite" not in err
    assert hashes(work) == before


def test_overwrite_replaces_what_the_command_wrote_and_nothing_else(work, capsys):
    """A folder an earlier run wrote may be replaced; once a stranger's file is in it, it may not."""
    assert run(["make-demo-data", "--out", "D", "--images-per-concept", "2"], capsys)[0] == 0
    code, err = run(["make-demo-data", "--out", "D", "--images-per-concept", "1"], capsys)
    assert_refused_in_one_line(code, err)
    assert "pass --overwrite" in err  # safe here: D holds only what make-demo-data wrote
    assert run(["make-demo-data", "--out", "D", "--images-per-concept", "1", "--overwrite"], capsys)[0] == 0
    assert len(json.loads((work / "D" / "all_train.json").read_text())) == 12  # fewer images: the old ones gone
    assert not (work / "D" / "img" / "Violence" / "5.png").exists()
    (work / "D" / "img" / "mine.png").write_bytes(b"not the command's")
    before = hashes(work)
    code, err = run(["make-demo-data", "--out", "D", "--overwrite"], capsys)
    assert_refused_in_one_line(code, err)
    assert "img/mine.png" in err
    assert hashes(work) == before
    # another command's output is a stranger too
    code, err = run(["prepare", "--train", "S/all_train.json", "--out", "D", "--overwrite"], capsys)
    assert_refused_in_one_line(code, err)
    assert hashes(work) == before


def test_a_folder_written_before_manifests_is_replaced_only_if_the_new_output_covers_it(work, capsys):
    assert run(["prepare", "--train", "S/all_train.json", "--out", "P"], capsys)[0] == 0
    (work / "P" / MANIFEST).unlink()  # as an earlier version left it
    assert run(["prepare", "--train", "S/all_train.json", "--out", "P", "--overwrite"], capsys)[0] == 0
    (work / "P" / MANIFEST).unlink()
    (work / "P" / "notes.txt").write_text("mine\n")
    before = hashes(work)
    code, err = run(["prepare", "--train", "S/all_train.json", "--out", "P", "--overwrite"], capsys)
    assert_refused_in_one_line(code, err)
    assert "notes.txt" in err and hashes(work) == before
    assert sorted(p.name for p in work.iterdir()) == ["P", "S", "other"]  # no .partial / .old left


def test_an_unwritable_output_folder_is_one_line(work, capsys):
    blocked = work / "other" / "notes.txt" / "out"  # under a file: mkdir fails, as in a read-only folder
    for argv in (
        ["prepare", "--train", "S/all_train.json", "--out", str(blocked)],
        ["make-demo-data", "--out", str(blocked)],
    ):
        code, err = run(argv, capsys)
        assert_refused_in_one_line(code, err)
        assert "cannot write" in err


def test_respond_into_an_unwritable_place_is_one_line_before_any_model_loads(work, tiny_model_dir, capsys):
    blocked = work / "other" / "notes.txt" / "out"
    argv = ["respond", "--model", str(tiny_model_dir), "--in", "S/all_train.json", "--out", str(blocked)]
    code, err = run(argv, capsys)
    assert_refused_in_one_line(code, err)
    assert "cannot write here" in err


def test_output_folder_leaves_nothing_behind_when_refusing_after_the_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("x")
    with pytest.raises(SafeEraserError, match=r"keep\.txt"), output_folder(final, "cmd", overwrite=True) as scratch:
        (scratch / "new.txt").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    with pytest.raises(SafeEraserError, match="would replace the current folder"), output_folder(".", "cmd", True):
        pass


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_respond_changes_no_file_it_did_not_write(work, tiny_model_dir, overwrite, capsys):
    flag = ["--overwrite"] if overwrite else []
    common = ["--model", str(tiny_model_dir), "--in", "S/all_train.json", "--limit", "1", "--max-new-tokens", "2"]
    before = hashes(work)
    for out in ("S", "other"):  # the input itself; a stranger's file of the output's name
        code, err = run(["respond", *common, "--out", out, *flag], capsys)
        assert_refused_in_one_line(code, err)
        assert "--overwrite" not in err
    assert hashes(work) == before
    for out in (".", str(work)):  # above the input: a new file beside the others
        assert run(["respond", *common, "--out", out, *flag], capsys)[0] == 0
        assert {k: v for k, v in hashes(work).items() if k in before} == before
        assert (work / "all_train.json").exists()
        flag = ["--overwrite"]  # the second place is the same file, which respond wrote: replaceable


def test_relearn_refuses_run_folders_holding_inputs_or_strangers(work, tiny_model_dir, capsys):
    shutil.copytree(work / "S", work / "GA")
    before = hashes(work)
    common = ["--model", str(tiny_model_dir), "--steps", "1"]
    for argv in (
        ["relearn", *common, "--data", "GA", "--name", "GA", "--out", "."],  # run folder = the data's folder
        ["relearn", *common, "--data", "S", "--name", "other", "--out", ".", "--overwrite"],  # a stranger's
    ):
        code, err = run(argv, capsys)
        assert_refused_in_one_line(code, err)
    assert hashes(work) == before


def test_demo_refuses_a_data_folder_holding_a_stranger_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_out" / "seed-233" / "data").mkdir(parents=True)
    (tmp_path / "demo_out" / "seed-233" / "data" / "notes.txt").write_text("mine\n")
    before = hashes(tmp_path)
    code, err = run(["demo", "--seeds", "1"], capsys)
    assert code == 2 and "notes.txt" in err.splitlines()[-1]
    assert {k: v for k, v in hashes(tmp_path).items() if k in before} == before
