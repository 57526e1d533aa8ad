"""Atomic writes: a reader never sees a half-written file or output folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import SafeEraserError


def read_json_document(path: Path, expected_format: str, what: str) -> dict[str, Any]:
    """A JSON object whose ``format`` is ``expected_format``; else a one-line error naming the file."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafeEraserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(loaded, dict) or loaded.get("format") != expected_format:
        raise SafeEraserError(f"{path}: not {what} (expected format '{expected_format}')")
    return loaded


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a read-only or missing place: one line, not a traceback
        raise SafeEraserError(f"{path}: cannot write the file here ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a scratch folder beside ``final``; it becomes ``final`` only if the block succeeds.

    A low-level primitive: commands write their output folders through :func:`output_folder`, which also
    refuses to replace anything the command did not write.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise SafeEraserError(f"{final}: output folder exists (pass --overwrite to replace it)")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    except OSError as err:
        raise SafeEraserError(f"{final}: cannot write the output folder here ({err.strerror or err})") from None
    scratch.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, trash / "old")
            os.replace(scratch, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(scratch, final)
    except OSError as err:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SafeEraserError(f"{final}: cannot replace the output folder ({err.strerror or err})") from None


# ----- output folders: replace only what the command wrote -------------------------------------------------
MANIFEST = ".safeeraser-output.json"  # in every output folder: the command and the files it wrote
MANIFEST_FORMAT = "safeeraser-output-v1"


def _files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if not path.is_dir()}


def written_files(folder: Path, command: str) -> set[str]:
    """The files an earlier run of ``command`` recorded in ``folder``'s manifest (none without one)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return set()
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return set()
    if manifest.get("command") != command or not isinstance(manifest.get("files"), list):
        return set()
    return {str(name) for name in manifest["files"]} | {MANIFEST}


def _encloses(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(
    final: str | Path,
    command: str,
    overwrite: bool,
    inputs: Iterable[str | Path] = (),
    what: str = "output folder",
    unrecorded_ok: bool = False,
) -> set[str]:
    """Refuse an output folder whose replacement could lose something the user has; one line each.

    Refused: the current folder or one above it; a folder that holds an input (the input's own folder or
    any folder above it); an existing folder without ``overwrite``; with ``overwrite``, a folder holding files
    an earlier run of ``command`` did not write. ``unrecorded_ok``: a folder without a manifest (one written
    before manifests) is not refused here; the files returned are those :func:`output_folder` then requires
    the new output to replace, every one of them.
    """
    final = Path(final)
    target = final.resolve()
    if _encloses(target, Path.cwd().resolve()):
        raise SafeEraserError(f"{final}: the {what} would replace the current folder; choose a new folder")
    for source in inputs:
        if _encloses(target, Path(source).resolve()):
            raise SafeEraserError(
                f"{final}: the {what} holds the input {source}, which replacing it would delete; choose another folder"
            )
    if not final.exists():
        return set()
    if not final.is_dir():
        raise SafeEraserError(f"{final}: exists and is not a folder; choose another {what}")
    present = _files_under(final)
    manifest = written_files(final, command)
    strangers = sorted(present - manifest)
    if strangers and (manifest or (overwrite and not unrecorded_ok)):
        raise SafeEraserError(
            f"{final}: the {what} holds {len(strangers)} file(s) that {command} did not write (e.g. "
            f"{strangers[0]}); move them or choose another folder"
        )
    if not overwrite:
        if strangers:
            raise SafeEraserError(
                f"{final}: the {what} exists and holds files with no record that {command} wrote them (e.g. "
                f"{strangers[0]}); choose another folder"
            )
        raise SafeEraserError(f"{final}: {what} exists (pass --overwrite to replace it)")
    return set(strangers)


@contextlib.contextmanager
def output_folder(
    final: str | Path,
    command: str,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    what: str = "output folder",
    unrecorded_ok: bool = False,
) -> Iterator[Path]:
    """Yield a scratch folder that atomically becomes ``final`` (see :func:`check_output_folder`).

    A manifest of the files written goes into the folder, so that a later ``--overwrite`` run of the same
    command may replace them, and nothing else.
    """
    final = Path(final)
    unaccounted = check_output_folder(final, command, overwrite, inputs, what, unrecorded_ok)
    with atomic_directory(final, overwrite=True) as scratch:
        yield scratch
        written = _files_under(scratch)
        lost = sorted(unaccounted - written)
        if lost:
            raise SafeEraserError(
                f"{final}: the {what} holds {len(lost)} file(s) that {command} did not write (e.g. {lost[0]}); "
                "move them or choose another folder"
            )
        record_written(scratch, command, written)


def record_written(folder: Path, command: str, names: Iterable[str]) -> None:
    """Add files ``command`` wrote into its finished output folder to the folder's manifest."""
    files = (written_files(folder, command) - {MANIFEST}) | set(names)
    write_json_atomic(folder / MANIFEST, {"format": MANIFEST_FORMAT, "command": command, "files": sorted(files)})


def check_output_file(path: Path, command: str, overwrite: bool, record: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse to write ``path`` over an input, or over a file that ``command`` did not write; ``record`` is
    the file the command writes beside each output (an earlier run wrote ``path`` if it is there)."""
    for source in inputs:
        if path.resolve() == Path(source).resolve():
            raise SafeEraserError(f"{path}: the output would replace the input; choose another --out folder")
    if not path.exists():
        check_writable(path.parent)
        return
    if not record.exists():
        raise SafeEraserError(
            f"{path}: output file exists and {command} did not write it (no {record.name}); choose another --out folder"
        )
    if not overwrite:
        raise SafeEraserError(f"{path}: output file exists (pass --overwrite to replace it)")


def check_writable(folder: Path) -> None:
    """Write a scratch file in ``folder``, or in the nearest folder above it that exists (nothing is left
    behind): a read-only place fails now, in one line, not after the work."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=existing)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise SafeEraserError(f"{folder}: cannot write here ({err.strerror or err})") from None
