"""Reading a transition journal: one line, one record, of a known schema, or a violation.

:func:`parse_line` turns one line of a JSON Lines journal into a
:class:`~streamfsm._core.records.TransitionRecord` or the :class:`Violation` that prevents it
(not UTF-8, not JSON, a missing or mistyped field, an unknown schema version); :func:`lines`
yields every line of a file with the hash the next line must link to. The checks across records
(the table, the sequence, the links) are in :mod:`streamfsm.audit.verify`.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from streamfsm._core.records import (
    JOURNAL_SCHEMA,
    SUPPORTED_SCHEMAS,
    V1_FIELDS,
    TransitionRecord,
    line_hash,
)

__all__ = [
    "FIRST_SEQ",
    "Violation",
    "ViolationKind",
    "checked",
    "lines",
    "parse_line",
    "read_records",
]

#: The record's fields, in order, as the writer emits them, per schema version.
_FIELDS_OF: Final[Mapping[int, tuple[str, ...]]] = {
    1: V1_FIELDS,
    JOURNAL_SCHEMA: tuple(field.name for field in attrs.fields(TransitionRecord)),
}
#: The first ``seq`` of a run.
FIRST_SEQ: Final = 1


class ViolationKind(enum.StrEnum):
    """What is wrong with a journal line or record."""

    #: Not UTF-8, not JSON, not an object, or empty.
    MALFORMED_LINE = "malformed_line"
    #: The last line has no newline: the write was cut short.
    TRUNCATED_LINE = "truncated_line"
    #: ``schema`` names a layout this version does not know.
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    #: A field is missing, unknown, duplicated or of the wrong type.
    BAD_SCHEMA = "bad_schema"
    #: No row of the table takes ``trigger`` from ``src`` to ``dst``.
    NOT_AN_EDGE = "not_an_edge"
    #: ``src`` is not the ``dst`` of the record before.
    BROKEN_CHAIN = "broken_chain"
    #: ``seq`` does not follow the record before (or a file does not begin at 1).
    SEQUENCE_GAP = "sequence_gap"
    #: A run (``seq`` 1) does not leave ``idle``.
    BAD_START = "bad_start"
    #: ``correlation_id`` changes within a run.
    CORRELATION_CHANGED = "correlation_changed"
    #: ``monotonic`` goes back within a run.
    CLOCK_REGRESSION = "clock_regression"
    #: ``prev_hash`` is not the hash of the line before: a line was removed, edited or inserted.
    BROKEN_LINK = "broken_link"


@attrs.frozen
class Violation:
    """One thing wrong with a journal.

    Attributes:
        line: the 1-based line of the file (for in-memory records: the index plus one).
        kind: what is wrong.
        message: the details, for a human.
    """

    line: int
    kind: ViolationKind
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind.value}: {self.message}"


# ---------------------------------------------------------------- field checks


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= FIRST_SEQ


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_duration(value: object) -> bool:
    return _is_number(value) and isinstance(value, int | float) and value >= 0


def _is_utc_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.utcoffset() == datetime.timedelta(0)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


#: Hex digits in a SHA-256 digest.
_HASH_DIGITS: Final = 64


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == _HASH_DIGITS
        and all(c in "0123456789abcdef" for c in value)
    )


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    def check_optional(value: object) -> bool:
        return value is None or check(value)

    return check_optional


#: Field -> (check, what the check expects). One entry per ``TransitionRecord`` field.
_FIELD_CHECKS: Final[Mapping[str, tuple[Callable[[object], bool], str]]] = {
    "schema": (_is_int, "an integer"),
    "seq": (_is_seq, "an integer >= 1"),
    "wall_time": (_is_utc_timestamp, "an ISO 8601 timestamp in UTC"),
    "monotonic": (_is_number, "a finite number"),
    "correlation_id": (_is_name, "a non-empty string"),
    "connection_id": (_optional(_is_name), "a non-empty string or null"),
    "epoch": (_is_count, "an integer >= 0"),
    "trigger": (_is_name, "a non-empty string"),
    "src": (_is_name, "a non-empty string"),
    "dst": (_is_name, "a non-empty string"),
    "reason": (_is_str, "a string"),
    "error": (_optional(_is_name), "a non-empty string or null"),
    "code": (_optional(_is_int), "an integer or null"),
    "attempt": (_is_count, "an integer >= 0"),
    "delay": (_optional(_is_duration), "a finite number >= 0 or null"),
    "last_data": (_optional(_is_number), "a finite number or null"),
    "prev_hash": (_optional(_is_hash), "a 64-digit lowercase hex SHA-256 or null"),
}


def _schema_problem(data: Mapping[str, object]) -> Violation | None:
    """The schema violation of one decoded record (with line 0: the caller sets it), if any."""
    schema = data.get("schema")
    if _is_int(schema) and schema not in SUPPORTED_SCHEMAS:
        supported = ", ".join(str(version) for version in sorted(SUPPORTED_SCHEMAS))
        return Violation(
            0,
            ViolationKind.UNKNOWN_SCHEMA_VERSION,
            f"schema {schema} is not a supported version ({supported})",
        )
    fields = _FIELDS_OF[schema if isinstance(schema, int) else JOURNAL_SCHEMA]
    missing = [name for name in fields if name not in data]
    unknown = sorted(name for name in data if name not in fields)
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(unknown))
        return Violation(0, ViolationKind.BAD_SCHEMA, "; ".join(parts))
    wrong = [
        f"{name} must be {expected}, got {data[name]!r}"
        for name, (check, expected) in _FIELD_CHECKS.items()
        if name in fields and not check(data[name])
    ]
    if wrong:
        return Violation(0, ViolationKind.BAD_SCHEMA, "; ".join(wrong))
    return None


def checked(line: int, data: Mapping[str, object]) -> TransitionRecord | Violation:
    """The record ``data`` describes, or the schema violation that prevents it."""
    problem = _schema_problem(data)
    if problem is not None:
        return attrs.evolve(problem, line=line)
    return TransitionRecord.from_dict(dict(data))


# ---------------------------------------------------------------- files


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: an object, refusing a key given twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


class _DuplicateKeyError(ValueError):
    """A JSON object names one key twice."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"field {key!r} appears twice")


def parse_line(line: int, raw: bytes) -> TransitionRecord | Violation:
    """One line of a journal file (without its newline), as a record or a violation."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Violation(line, ViolationKind.MALFORMED_LINE, f"not UTF-8: {error.reason}")
    if not text.strip():
        return Violation(line, ViolationKind.MALFORMED_LINE, "empty line")
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKeyError as error:
        return Violation(line, ViolationKind.BAD_SCHEMA, str(error))
    except json.JSONDecodeError as error:
        return Violation(line, ViolationKind.MALFORMED_LINE, f"not JSON: {error.msg}")
    except (ValueError, RecursionError) as error:
        # json.loads also refuses huge integers (ValueError) and deep nesting (RecursionError).
        return Violation(line, ViolationKind.MALFORMED_LINE, f"not JSON: {type(error).__name__}")
    if not isinstance(data, dict):
        return Violation(
            line, ViolationKind.MALFORMED_LINE, f"a JSON {type(data).__name__}, not an object"
        )
    return checked(line, data)


def lines(path: Path) -> Iterator[tuple[int, TransitionRecord | Violation, str]]:
    """Every line of the journal at ``path`` with its number, parsed, and its link hash.

    A last line without a newline is reported as truncated and not parsed.

    Raises:
        OSError: when the file cannot be read.
    """
    content = path.read_bytes()
    if not content:
        return
    *complete, last = content.split(b"\n")
    for index, raw in enumerate(complete):
        yield index + 1, parse_line(index + 1, raw), line_hash(raw)
    if last:
        line = len(complete) + 1
        yield (
            line,
            Violation(
                line,
                ViolationKind.TRUNCATED_LINE,
                f"the last line has no newline ({len(last)} bytes): the write was cut short",
            ),
            line_hash(last),
        )


def read_records(path: Path) -> tuple[list[TransitionRecord], list[Violation]]:
    """The readable records of a journal file, and the lines that yielded none.

    Only line-level problems (malformed, truncated, schema) are returned; :func:`verify_file`
    also checks the records against the table and each other.

    Raises:
        OSError: when the file cannot be read.
    """
    records: list[TransitionRecord] = []
    problems: list[Violation] = []
    for _, outcome, _link in lines(path):
        if isinstance(outcome, Violation):
            problems.append(outcome)
        else:
            records.append(outcome)
    return records, problems
