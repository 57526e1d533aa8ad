"""The SafeEraser benchmark format: read, validate and describe records.

A file is a JSON list (or JSON Lines) of records, one per harmful image (docs/evaluation.md, "Data").
Every problem is reported as a :class:`DataError` naming the file, record index and field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

# Which question goes with the benign SD image (prompt-decouple rows, SARR): the harmful question itself
# (the SafeEraser reference: prompt decoupling is about the same question), or a record's `sd_question`.
SD_IMAGE_QUESTIONS = ("harmful", "sd_question")
CATEGORIES = ("Violence", "Weapon", "Privacy", "Sex", "HateSpeech", "IllegalActivity")
_CATEGORY_BY_LOWER = {name.lower(): name for name in CATEGORIES}
UNHARM_TEXT_FIELDS = ("UnharmPair_text1", "UnharmPair_text2")
UNHARM_IMAGE_FIELDS = ("UnharmPair_image1", "UnharmPair_image2")


@dataclass(frozen=True)
class UnsafePair:
    question: str
    model_response: str  # the vanilla model's harmful answer: the forget target
    sd_response: str  # a normal answer to the same question about the benign SD image
    sd_question: str | None = None

    def question_for_sd_image(self, which: str = "harmful") -> str:
        """The question asked about the SD image: the harmful one, or ``sd_question`` (when the pair has one)."""
        if which not in SD_IMAGE_QUESTIONS:
            raise ValueError(f"unknown SD-image question '{which}'; expected one of {', '.join(SD_IMAGE_QUESTIONS)}")
        return self.sd_question if which == "sd_question" and self.sd_question else self.question


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


@dataclass(frozen=True)
class SafeEraserRecord:
    index: int
    image_path: Path  # absolute
    category: str
    keyword: str | None
    unsafe_pairs: tuple[UnsafePair, ...]
    sd_image_path: Path  # absolute
    unharm_text: tuple[QAPair, ...]  # benign knowledge questions asked with the harmful image
    unharm_image: tuple[QAPair, ...]  # benign questions about the harmful image itself

    @property
    def keyword_text(self) -> str:
        """The concept as words ('BombAttack' -> 'bomb attack'); the folder's category if no keyword."""
        return concept_text(self.keyword, self.category)

    @property
    def retain_pairs(self) -> tuple[QAPair, ...]:
        return self.unharm_text + self.unharm_image


def concept_text(keyword: str | None, category: str) -> str:
    """A record's concept as words: its keyword split at capitals ('BombAttack' -> 'bomb attack'), else its
    category in lower case."""
    if not keyword:
        return category.lower()
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword).lower()


def read_benchmark(path: str | Path, check_images: bool = True) -> list[SafeEraserRecord]:
    """Read and validate a SafeEraser JSON / JSON Lines file; image paths resolve against its folder."""
    records, problems = check_benchmark(path, check_images)
    if problems:
        raise problems[0]
    return records


def check_benchmark(path: str | Path, check_images: bool = True) -> tuple[list[SafeEraserRecord], list[DataError]]:
    """Every record that is valid, and every problem of the file (a record's first problem each), in order."""
    path = Path(path)
    try:
        raw_records = load_raw_records(path)
    except DataError as err:
        return [], [err]
    if not raw_records:
        return [], [DataError(path, "the file holds no records")]
    records, problems = [], []
    for i, raw in enumerate(raw_records):
        try:
            records.append(_parse_record(path, i, raw, check_images))
        except DataError as err:
            problems.append(err)
    seen: dict[Path, int] = {}
    for record in records:
        if record.image_path in seen:
            message = f"duplicate record: same image as record {seen[record.image_path]}"
            problems.append(DataError(path, message, record.index, "image_path"))
        seen.setdefault(record.image_path, record.index)
    problems.sort(key=lambda err: -1 if err.record is None else err.record)
    return records, problems


def load_raw_records(path: Path) -> list[Any]:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        # surrogateescape keeps undecodable bytes visible as lone surrogates, so the record and
        # field that hold them can be named later instead of failing on the whole file here.
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as err:
        raise DataError(path, f"cannot read file: {err.strerror}") from err
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return _parse_json_array(path, stripped)
    if stripped.startswith("{"):
        _refuse_one_object(path, stripped)
    return _parse_json_lines(path, text)


def _refuse_one_object(path: Path, text: str) -> None:
    """A whole file that is one JSON object (not JSON Lines): say so, and where a list of records may be."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return  # JSON Lines, or broken JSON: the line-by-line parse names the line
    if not isinstance(value, dict):
        return
    lists = [key for key, item in value.items() if isinstance(item, list)]
    hint = f"; its key '{lists[0]}' holds a list: save that list as the file" if lists else ""
    raise DataError(path, f"expected a JSON list of records ([{{...}}, ...]) or JSON Lines, got one JSON object{hint}")


def _parse_json_array(path: Path, text: str) -> list[Any]:
    """Parse element by element so that a syntax error can name the record it is in."""
    decoder = json.JSONDecoder()
    records: list[Any] = []
    pos = _skip_ws(text, 1)
    if pos < len(text) and text[pos] == "]":
        return records
    while True:
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            message = f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
            raise DataError(path, message, len(records)) from None
        records.append(value)
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1 :].strip():
                raise DataError(path, "invalid JSON: extra data after the closing ']'")
            return records
        raise DataError(path, "invalid JSON: expected ',' or ']' after the record", len(records) - 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _parse_json_lines(path: Path, text: str) -> list[Any]:
    records: list[Any] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(
                path, f"invalid JSON on line {line_number}: {err.msg} (column {err.colno})", len(records)
            ) from None
    return records


class _RecordReader:
    """Typed field access for one raw record; every failure names file, record and field."""

    def __init__(self, path: Path, index: int, raw: Any):
        self.path, self.index = path, index
        if not isinstance(raw, dict):
            self.fail(None, f"expected a JSON object, got {_type_name(raw)}")
        self.raw: dict[str, Any] = raw

    def fail(self, field: str | None, message: str) -> None:
        raise DataError(self.path, message, self.index, field)

    def text(self, container: dict[str, Any], key: str, field: str, required: bool = True) -> str | None:
        if key not in container or container[key] is None:
            if required:
                self.fail(field, "missing")
            return None
        value = container[key]
        if not isinstance(value, str):
            self.fail(field, f"expected a string, got {_type_name(value)}")
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            self.fail(field, "text is not valid UTF-8")
        if required and not value.strip():
            self.fail(field, "empty string")
        return value

    def obj(self, key: str) -> dict[str, Any]:
        if key not in self.raw or self.raw[key] is None:
            self.fail(key, "missing")
        value = self.raw[key]
        if not isinstance(value, dict):
            self.fail(key, f"expected an object with Question and Prediction, got {_type_name(value)}")
        return value

    def image(self, key: str, check: bool) -> Path:
        relative = self.text(self.raw, key, key)
        image_path = (self.path.parent / relative).resolve()
        if check:
            if not image_path.is_file():
                self.fail(key, f"image file not found: {image_path}")
            try:
                from PIL import Image

                with Image.open(image_path) as img:
                    img.verify()
            except Exception as err:  # PIL raises many types for broken files
                self.fail(key, f"unreadable image {image_path}: {err}")
        return image_path


def _parse_record(path: Path, index: int, raw: Any, check_images: bool) -> SafeEraserRecord:
    reader = _RecordReader(path, index, raw)
    image_path = reader.image("image_path", check_images)
    raw_category = reader.text(reader.raw, "category", "category", required=False)
    category_source, category_field = (
        (raw_category, "category")
        if raw_category
        else (
            image_path.parent.name,
            "image_path",
        )
    )
    category = _CATEGORY_BY_LOWER.get(category_source.lower())
    if category is None:
        reader.fail(category_field, f"unknown category '{category_source}'; expected one of {', '.join(CATEGORIES)}")
    keyword = reader.text(reader.raw, "keyword", "keyword", required=False)

    raw_pairs = reader.raw.get("unsafe_pairs")
    if raw_pairs is None:
        reader.fail("unsafe_pairs", "missing")
    if not isinstance(raw_pairs, list):
        reader.fail("unsafe_pairs", f"expected a list, got {_type_name(raw_pairs)}")
    if not raw_pairs:
        reader.fail("unsafe_pairs", "empty list: a record needs at least one harmful question")
    pairs = []
    for j, pair in enumerate(raw_pairs):
        field = f"unsafe_pairs[{j}]"
        if not isinstance(pair, dict):
            reader.fail(field, f"expected an object, got {_type_name(pair)}")
        pairs.append(
            UnsafePair(
                question=reader.text(pair, "question", f"{field}.question"),
                model_response=reader.text(pair, "model_response", f"{field}.model_response"),
                sd_response=reader.text(pair, "sd_response", f"{field}.sd_response"),
                sd_question=reader.text(pair, "sd_question", f"{field}.sd_question", required=False),
            )
        )

    def qa(key: str) -> QAPair:
        obj = reader.obj(key)
        return QAPair(
            reader.text(obj, "Question", f"{key}.Question"), reader.text(obj, "Prediction", f"{key}.Prediction")
        )

    return SafeEraserRecord(
        index=index,
        image_path=image_path,
        category=category,
        keyword=keyword,
        unsafe_pairs=tuple(pairs),
        sd_image_path=reader.image("SDImage_path", check_images),
        unharm_text=tuple(qa(key) for key in UNHARM_TEXT_FIELDS),
        unharm_image=tuple(qa(key) for key in UNHARM_IMAGE_FIELDS),
    )


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
