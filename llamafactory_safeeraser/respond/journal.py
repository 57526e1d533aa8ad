"""An append-only JSON Lines journal of finished answers, so that an interrupted run resumes where it stopped.

Line 1 is a header with the fingerprint of the settings that produced the answers; every further line is one
answer, ``{"key": "<record>:<pair>:<field>", "text": ...}``. Each batch is appended in one write and
fsync'd before the run moves on, so after a crash (kill -9, power loss) the file holds whole answers plus
at most one torn last line, which :meth:`Journal.open` cuts off. An answer is written only when its key is
not in the journal yet: nothing is ever written twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import SafeEraserError

FORMAT = "safeeraser-respond-journal/1"


class Journal:
    def __init__(self, path: Path, fingerprint: str, answers: dict[str, str]):
        self.path = path
        self.fingerprint = fingerprint
        self.answers = answers  # key -> text, everything the journal holds

    @classmethod
    def open(cls, path: str | Path, fingerprint: str, discard_other: bool) -> Journal:
        """The journal at ``path``: resumed when its fingerprint matches, else started anew (``discard_other``)
        or refused. A new journal's file is written with its first answers: a run that fails before answering
        anything leaves no file."""
        path = Path(path)
        if path.exists():
            header, answers = _read(path)
            if header.get("fingerprint") == fingerprint:
                return cls(path, fingerprint, answers)
            if not discard_other:
                raise SafeEraserError(
                    f"{path}: a journal of an unfinished run with other settings ({len(answers)} answers); "
                    "run with the same settings to resume it, or pass --overwrite to discard it"
                )
            path.unlink()
        return cls(path, fingerprint, {})

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".new")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"format": FORMAT, "fingerprint": self.fingerprint}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)  # a journal exists with its header or not at all

    def append(self, answers: Mapping[str, str]) -> int:
        """Write the answers whose keys are new, in one write, and fsync; returns how many were written."""
        new = {key: text for key, text in answers.items() if key not in self.answers}
        if not new:
            return 0
        lines = "".join(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n" for key, text in new.items())
        if not self.path.exists():
            self._create()
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.answers.update(new)
        return len(new)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict, dict[str, str]]:
    """(header, answers) of a journal; a torn last line (no newline: the write was cut) is cut off the file."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
            os.fsync(handle.fileno())
    lines = complete.decode("utf-8", errors="replace").splitlines()
    if not lines:
        return {}, {}
    try:
        header = json.loads(lines[0])
        answers: dict[str, str] = {}
        for line in lines[1:]:
            entry = json.loads(line)
            answers.setdefault(entry["key"], entry["text"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SafeEraserError(f"{path}: not a respond journal (pass --overwrite to start over)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SafeEraserError(f"{path}: not a respond journal (pass --overwrite to start over)")
    return header, answers
