"""Generate ``docs/state-diagram.md`` from the transition tables, and check it for drift.

The document is for auditors and reviewers, so it lives with the repository, not in the wheel:
the invariants name test ids, which mean nothing to an installed package. Everything in it is
derived at call time from the machines ``streamfsm.audit.diagram.machines()`` lists, from
``streamfsm.errors`` (the Alpaca code table and each error's ``fatal`` flag) and from
:data:`INVARIANTS` below; what an error leads to is read from the table's rows, not written by
hand.

    python -m tools.statedoc --write docs/state-diagram.md   # regenerate (make diagram)
    python -m tools.statedoc --check docs/state-diagram.md   # exit 1 with a diff when stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from streamfsm import errors
from streamfsm.audit.diagram import (
    MachineSpec,
    TableRow,
    machines,
    normalise,
    readable_guard,
    render_mermaid,
)
from streamfsm.config import StreamConfig
from tools.invariants import INVARIANTS

__all__ = ["DOCUMENT_PATH", "check_file", "main", "render_document"]

#: Where the committed document lives, relative to the repository root.
DOCUMENT_PATH: Final = "docs/state-diagram.md"
_REGENERATE: Final = f"python -m tools.statedoc --write {DOCUMENT_PATH}"
#: Lines of unified diff ``--check`` shows, and the context around each change.
_DIFF_LINES_SHOWN: Final = 40
_DIFF_CONTEXT: Final = 1

#: The guards that read the error a trigger carries, as predicates on the error's class: the
#: document evaluates them per class to tell which rows an error can take.
_ERROR_GUARDS: Final[Mapping[str, Callable[[type[errors.StreamError]], bool]]] = {
    "is_fatal": lambda cls: cls.fatal,
    "predecessor_connected": lambda cls: issubclass(cls, errors.PredecessorStillConnectedError),
}
#: Triggers by which a session ends with an error, and the state they are fired in.
_SESSION_END_TRIGGERS: Final = ("attempt_failed", "connection_lost")
#: The classes whose instances end a session below the Alpaca code table, with the triggers they
#: reach the machine by (the stale watchdog has its own trigger); their subclasses follow.
_SESSION_ERROR_ROOTS: Final[tuple[tuple[type[errors.StreamError], tuple[str, ...]], ...]] = (
    (errors.TransportError, _SESSION_END_TRIGGERS),
    (errors.StaleConnectionError, ("data_stale",)),
    (errors.RemoteProtocolError, _SESSION_END_TRIGGERS),
    (errors.InternalError, _SESSION_END_TRIGGERS),
    (errors.PredecessorStillConnectedError, _SESSION_END_TRIGGERS),
)
#: Errors that refuse one subscription change and leave the session as it is.
_CHANGE_REFUSALS: Final = (errors.ChangeIgnoredError,)
#: What the table cannot say about an error's delay and the breaker, said once per class.
_DELAY_NOTES: Final[Mapping[type[errors.StreamError], str]] = {
    errors.PredecessorStillConnectedError: (
        "the delay is the error's `retry_after`, and the breaker does not count the failure"
    ),
}


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in body)
    return lines


# ---------------------------------------------------------------- what an error leads to


def _applies(row: TableRow, error: type[errors.StreamError]) -> bool:
    """False when a guard on the error rules ``row`` out for ``error``; other guards may hold."""
    return all(
        _ERROR_GUARDS[name](error) for name in row.conditions if name in _ERROR_GUARDS
    ) and not any(_ERROR_GUARDS[name](error) for name in row.unless if name in _ERROR_GUARDS)


def _outcome(rows: Sequence[TableRow], trigger: str, error: type[errors.StreamError]) -> str:
    """Where ``error`` carried by ``trigger`` leads: ``in `s`: `a` or `b` via `t```.

    Rows are tried in table order per source state; a row guarded only by guards on the error
    (or unguarded) decides for its sources, so the rows after it are out of reach there.
    """
    decided: set[object] = set()
    sources: dict[str, None] = {}
    dests: dict[str, None] = {}
    for row in rows:
        if row.trigger != trigger or not _applies(row, error):
            continue
        reached = [source for source in row.sources if source not in decided]
        if not reached:
            continue
        sources.update(dict.fromkeys(str(source.value) for source in reached))
        if row.dest is not None:
            dests[str(row.dest.value)] = None
        if all(name in _ERROR_GUARDS for name in (*row.conditions, *row.unless)):
            decided.update(reached)
    where = ", ".join(_code(source) for source in sources)
    to = " or ".join(_code(dest) for dest in dests)
    return f"in {where}: {to} via `{trigger}`"


def error_consequence(
    rows: Sequence[TableRow],
    triggers: Sequence[str],
    error: type[errors.StreamError],
    *,
    rejects_change: bool = False,
) -> str:
    """What the controller does with ``error``, read from the rows of its triggers."""
    parts = []
    for trigger in triggers:
        if rejects_change and trigger == "connection_lost":
            continue
        parts.append(_outcome(rows, trigger, error))
    if rejects_change:
        parts.append("while `subscribed`: the subscription change is refused, the session stays")
    if error.fatal:
        parts.append("never retried")
    if error in _DELAY_NOTES:
        parts.append(_DELAY_NOTES[error])
    return "; ".join(parts)


def _connection_limit_cooldown() -> float:
    default = attrs.fields(StreamConfig).connection_limit_cooldown.default
    if not isinstance(default, int | float):  # pragma: no cover - a plain default by design
        raise TypeError("StreamConfig.connection_limit_cooldown has no plain numeric default")
    return float(default)


def _server_error_rows(rows: Sequence[TableRow]) -> list[tuple[str, ...]]:
    body: list[tuple[str, ...]] = []
    for _, spec in sorted(errors.SERVER_ERRORS.items()):
        text = error_consequence(
            rows, _SESSION_END_TRIGGERS, spec.error_class, rejects_change=spec.rejects_change
        )
        if spec.code == errors.ConnectionLimitError.code:
            text += (
                "; the delay is `connection_limit_cooldown` (default "
                f"{_connection_limit_cooldown():g} s) and the failure counts toward the breaker"
            )
        body.append(
            (
                str(spec.code),
                spec.message,
                _code(spec.error_class.__name__),
                "fatal" if spec.fatal else "transient",
                text,
            )
        )
    return body


def _subclasses(root: type[errors.StreamError]) -> list[type[errors.StreamError]]:
    found = [root]
    for child in sorted(root.__subclasses__(), key=lambda cls: cls.__name__):
        found.extend(_subclasses(child))
    return found


def _other_error_rows(rows: Sequence[TableRow]) -> list[tuple[str, ...]]:
    triggers_of: dict[type[errors.StreamError], tuple[str, ...]] = {}
    for root, triggers in _SESSION_ERROR_ROOTS:
        for cls in _subclasses(root):
            triggers_of[cls] = triggers
    body: list[tuple[str, ...]] = []
    for cls, triggers in triggers_of.items():
        refusal = issubclass(cls, _CHANGE_REFUSALS)
        text = (
            error_consequence(rows, (), cls, rejects_change=True)
            if refusal
            else error_consequence(rows, triggers, cls)
        )
        body.append(
            (
                _code(cls.__name__),
                _code(cls.__mro__[1].__name__),
                "fatal" if cls.fatal else "transient",
                text,
            )
        )
    return body


# ---------------------------------------------------------------- the document


def _transition_rows(spec: MachineSpec) -> list[tuple[str, ...]]:
    rows = spec.rows
    body: list[tuple[str, ...]] = []
    for index, row in enumerate(rows):
        guard = readable_guard(rows, index)
        drawn = not (
            row.trigger in spec.anywhere
            or row.dest is None
            or all(source is row.dest for source in row.sources)
        )
        body.append(
            (
                str(index + 1),
                _code(row.trigger),
                ", ".join(_code(str(state.value)) for state in row.sources),
                "(stays)" if row.dest is None else _code(str(row.dest.value)),
                f"*{guard}*" if guard == "else" else (_code(guard) if guard else "always"),
                row.effects,
                "edge" if drawn else ("note" if row.trigger in spec.anywhere else "table only"),
            )
        )
    return body


def _machine_section(spec: MachineSpec) -> list[str]:
    return [
        f"## {spec.title}",
        "",
        "```mermaid",
        render_mermaid([spec]).rstrip("\n"),
        "```",
        "",
        f"### {spec.title}: transitions",
        "",
        *_table(
            ("#", "trigger", "from", "to", "guard", "effects", "drawn as"), _transition_rows(spec)
        ),
        "",
    ]


def render_document(specs: Sequence[MachineSpec] | None = None) -> str:
    """The full text of ``docs/state-diagram.md``: diagrams, tables, errors, invariants."""
    chosen = machines() if specs is None else specs
    connection = chosen[0]
    lines = [
        "# streamfsm state diagrams",
        "",
        f"Generated from the transition tables by `{_REGENERATE}` (`make diagram`); do not "
        "edit by hand. `make test` fails while this file is stale.",
        "",
        "This is what the controller does. What it did is in its transition journal; "
        "`streamfsm audit verify JOURNAL` checks the journal against these tables "
        "(see [audit.md](audit.md)).",
        "",
        "## How to read the diagrams",
        "",
        "- States run in lifecycle order from left to right; `[*]` marks where an instance starts.",
        "- One arrow per pair of states; each line of its label is one row of the table, "
        "`trigger [guard]`. Guards are in words: `a and not b`. `[else]` is an unguarded row "
        "taken when the rows before it for the same trigger and state do not apply (rows are "
        "tried in table order).",
        "- A trigger that applies in every state is one note (`any state -> stopped: stop`), "
        "not an arrow from each state.",
        "- Rows that do not leave their state are in the table only (*drawn as: table only*): "
        "internal rows *(stays)* run their effects without leaving the state; reflexive rows "
        "(`restart` from `connecting`, `start` from `idle`) leave the state and enter it again.",
        "",
        *[line for spec in chosen for line in _machine_section(spec)],
        "## Errors",
        "",
        "Every error is *fatal* (the lifecycle ends in `stopped` with the typed error, and it is "
        "never retried) or *transient* (`backoff`, or `circuit_open` when the breaker trips). "
        "What each leads to is read from the rows of the trigger that carries it.",
        "",
        "### Alpaca error codes",
        "",
        "From `streamfsm.errors.SERVER_ERRORS`. An undocumented code is a transient `ServerError`.",
        "",
        *_table(
            ("code", "message", "class", "fatal or transient", "what happens"),
            _server_error_rows(connection.rows),
        ),
        "",
        "### Other errors",
        "",
        *_table(
            ("class", "base", "fatal or transient", "what happens"),
            _other_error_rows(connection.rows),
        ),
        "",
        "## Invariants",
        "",
        "Each holds in every state and after every transition; the tests named check it.",
        "",
        *_table(
            ("#", "invariant", "checked by"),
            [
                (str(inv.number), inv.text, "<br>".join(_code(test) for test in inv.tests))
                for inv in INVARIANTS
            ],
        ),
    ]
    return normalise("\n".join(lines))


def check_file(path: Path) -> str:
    """An empty string when ``path`` equals a fresh render, else a unified diff to the render.

    Raises:
        OSError: when the file cannot be read.
        UnicodeDecodeError: when it is not UTF-8.
    """
    committed = path.read_bytes().decode("utf-8")
    expected = render_document()
    if committed == expected:
        return ""
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{path} (generated from the tables)",
            n=_DIFF_CONTEXT,
        )
    )
    return diff or f"{path}: differs from the render in line endings or bytes only\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``--write FILE`` regenerates, ``--check FILE`` exits 1 with a diff when FILE is stale."""
    parser = argparse.ArgumentParser(prog="python -m tools.statedoc", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--write", type=Path, metavar="FILE")
    target.add_argument("--check", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    if args.write is not None:
        args.write.write_bytes(render_document().encode("utf-8"))
        return 0
    try:
        diff = check_file(args.check)
    except (OSError, UnicodeDecodeError) as error:
        sys.stderr.write(f"statedoc: cannot read {args.check}: {error}\n")
        return 1
    if not diff:
        return 0
    lines = diff.splitlines(keepends=True)
    shown = "".join(lines[:_DIFF_LINES_SHOWN])
    if len(lines) > _DIFF_LINES_SHOWN:
        shown += f"... ({len(lines) - _DIFF_LINES_SHOWN} more diff lines)\n"
    sys.stderr.write(shown + f"{args.check} is stale: regenerate it with `{_REGENERATE}`\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
