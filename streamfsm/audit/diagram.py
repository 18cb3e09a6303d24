"""The state diagram: what the controller does, exported from the one transition table.

Every output here is a pure function of ``streamfsm._core.machine.TRANSITIONS``, ``State``,
``streamfsm.errors.SERVER_ERRORS`` and :data:`INVARIANTS`, read at call time:

* :func:`render_mermaid` draws the table through ``transitions``' own Mermaid engine, from a fresh
  ``GraphMachine`` with the guards shown on the edges;
* :func:`render_dot` writes the same graph as Graphviz DOT (our own writer: the ``graphviz``
  package is not a dependency);
* :func:`render_json` gives the table, the error classification and the invariants as data;
* :func:`render_document` is the whole of ``docs/state-diagram.md``.

Every output is byte-stable: the same table gives the same bytes, whatever ``PYTHONHASHSEED`` is,
with ``\\n`` line endings, no trailing spaces and one final newline. ``streamfsm diagram --check``
compares a committed file with a fresh render, so a table change without a regenerated document
fails the build.
"""

from __future__ import annotations

import argparse
import difflib
import enum
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import attrs
from transitions.extensions.diagrams import GraphMachine

from streamfsm import errors
from streamfsm._core import machine
from streamfsm._core.machine import Row, State
from streamfsm.config import StreamConfig

__all__ = [
    "DOCUMENT_PATH",
    "INVARIANTS",
    "JSON_FORMAT_VERSION",
    "DiagramFormat",
    "Invariant",
    "add_parser",
    "check_file",
    "render",
    "render_document",
    "render_dot",
    "render_json",
    "render_mermaid",
    "run",
]

#: Where the committed document lives, relative to the repository root.
DOCUMENT_PATH: Final = "docs/state-diagram.md"
#: The command that regenerates the committed document.
_REGENERATE_COMMAND: Final = f"streamfsm diagram --write {DOCUMENT_PATH}"
#: The command that fails when the committed document is stale.
_CHECK_COMMAND: Final = f"streamfsm diagram --check {DOCUMENT_PATH}"

#: ``transitions`` writes the title verbatim between the two ``---`` lines of Mermaid's front
#: matter, which Mermaid reads as YAML: a bare string would be ignored, ``title: ...`` is a title.
_MERMAID_FRONT_MATTER_TITLE: Final = "title: streamfsm connection lifecycle"
#: The DOT graph's name.
_DOT_GRAPH_NAME: Final = "streamfsm"
#: Version of the layout :func:`render_json` emits; bump it when a key changes meaning.
JSON_FORMAT_VERSION: Final = 1
#: Indentation of the JSON export.
_JSON_INDENT: Final = 2
#: Lines of unified diff ``--check`` shows before it summarises the rest.
_DIFF_LINES_SHOWN: Final = 40
#: Context lines around each change in the ``--check`` diff.
_DIFF_CONTEXT: Final = 1

#: Exit status of a command that found nothing wrong.
_EXIT_OK: Final = 0
#: Exit status of ``--check`` on drift, or of a file that cannot be read or written.
_EXIT_DRIFT: Final = 1


class DiagramFormat(enum.StrEnum):
    """The formats ``streamfsm diagram`` can emit."""

    MERMAID = "mermaid"
    DOT = "dot"
    JSON = "json"
    MARKDOWN = "markdown"


@attrs.frozen
class Invariant:
    """One invariant of the design and the tests that check it.

    Attributes:
        number: its number in ``DESIGN.md`` (1-based).
        text: the invariant in one sentence (Markdown).
        tests: pytest node ids (or test modules) that check it.
    """

    number: int
    text: str
    tests: tuple[str, ...]


_STATEFUL: Final = "tests/test_stateful.py::ControllerMachine"
_INTEGRATION: Final = "tests/test_controller_integration.py"

#: The ten invariants of the design, each with the tests that check it. The one source of this
#: list: ``docs/state-diagram.md`` and the JSON export are rendered from it.
INVARIANTS: Final[tuple[Invariant, ...]] = (
    Invariant(
        1,
        "The machine is always in exactly one of its states, and every state change is an edge "
        "of the table.",
        (
            f"{_STATEFUL}.single_state_and_table_edge",
            "tests/test_machine.py::test_every_state_trigger_pair",
        ),
    ),
    Invariant(
        2,
        "`is_connected()` is true exactly in `subscribed`.",
        (f"{_STATEFUL}.connected_iff_subscribed",),
    ),
    Invariant(
        3,
        "At most one transport is open at any time; none in idle, backoff, circuit_open, stopped.",
        (f"{_STATEFUL}.at_most_one_transport",),
    ),
    Invariant(
        4,
        "No connection attempt while the breaker is open before its cool-down; attempts per "
        "window stay under the backoff bound (no reconnect storm).",
        (f"{_STATEFUL}.no_reconnect_storm",),
    ),
    Invariant(
        5,
        "Once `subscribed`, the acknowledged set equals the desired set, after every reconnect "
        "and symbol change.",
        (
            f"{_STATEFUL}.acknowledged_equals_desired",
            f"{_INTEGRATION}::test_resubscribes_after_drop",
        ),
    ),
    Invariant(
        6,
        "After `stop()` returns: state is `stopped`, no transport, no timer or task, no callback "
        "called again.",
        (
            f"{_STATEFUL}.stopped_leaves_nothing",
            f"{_INTEGRATION}::test_stop_from_each_state",
            "tests/test_lifecycle_edges.py::test_stop_inside_a_callback_delivers_nothing_more",
        ),
    ),
    Invariant(
        7,
        "A user callback that raises never changes the state; it is counted and logged.",
        (
            f"{_STATEFUL}.callback_errors_never_change_state",
            f"{_INTEGRATION}::test_raising_callback_keeps_stream",
        ),
    ),
    Invariant(
        8,
        "A fatal error ends in `stopped` with its typed error and is never retried.",
        (
            f"{_STATEFUL}.fatal_errors_stop_for_good",
            f"{_INTEGRATION}::test_fatal_errors_stop_after_one_attempt",
        ),
    ),
    Invariant(
        9,
        "The backoff delay for attempt n lies in the policy's bounds and never exceeds its "
        "maximum.",
        (f"{_STATEFUL}.backoff_delays_within_bounds", "tests/test_policies.py"),
    ),
    Invariant(
        10,
        "The secret never appears in a log record, a `repr`, an exception message or the journal.",
        (
            f"{_STATEFUL}.secret_never_leaks",
            "tests/test_secrets.py",
            f"{_INTEGRATION}::test_secret_never_appears_in_logs",
            "tests/test_lifecycle_edges.py::test_debug_logging_never_shows_the_auth_frame",
        ),
    ),
)


@attrs.frozen
class _OtherError:
    """An error that is not an Alpaca error code, and what the controller does with it."""

    error_class: type[errors.StreamError]
    consequence: str


#: What the errors raised below the Alpaca protocol lead to (the server codes are in the table
#: ``errors.SERVER_ERRORS`` and described by :func:`_server_error_consequence`).
_OTHER_ERRORS: Final[tuple[_OtherError, ...]] = (
    _OtherError(
        errors.ConnectTimeoutError,
        "in `connecting`: `backoff` or `circuit_open` via `attempt_failed`",
    ),
    _OtherError(
        errors.ConnectionClosedError,
        "in `connecting`: `backoff` or `circuit_open` via `attempt_failed`; "
        "while `subscribed`: the same via `connection_lost`",
    ),
    _OtherError(
        errors.TransportError,
        "any other socket failure: as `ConnectionClosedError`",
    ),
    _OtherError(
        errors.StaleConnectionError,
        "while `subscribed`: the mute session is closed, `backoff` or `circuit_open` via "
        "`data_stale`",
    ),
    _OtherError(
        errors.RemoteProtocolError,
        "the peer broke the protocol: as a transport failure, via `attempt_failed` or "
        "`connection_lost`",
    ),
)


# ---------------------------------------------------------------- the table, read at call time


def _rows() -> tuple[Row, ...]:
    """The transition table as it is now (read at call time, so tests can patch it)."""
    return machine.TRANSITIONS


def _triggers(rows: Iterable[Row]) -> tuple[str, ...]:
    """Every trigger name of ``rows``, in table order."""
    return tuple(dict.fromkeys(row.trigger for row in rows))


def _is_fallback(rows: Sequence[Row], index: int) -> bool:
    """True when row ``index`` is unguarded and follows a row it shares a trigger and source with.

    Such a row is the ``else`` of the rows before it: it applies only when their guards fail.
    """
    row = rows[index]
    if row.guard:
        return False
    return any(
        earlier.trigger == row.trigger and set(earlier.sources) & set(row.sources)
        for earlier in rows[:index]
    )


def _normalise(text: str) -> str:
    """``text`` with ``\\n`` line endings, no trailing spaces and exactly one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Mermaid


def render_mermaid() -> str:
    """The table as a Mermaid ``stateDiagram-v2``, drawn by ``transitions``' Mermaid engine.

    The diagram comes from a fresh ``GraphMachine`` (``auto_transitions=False``,
    ``graph_engine="mermaid"``, ``show_conditions=True``) whose states are the ``State`` values,
    so node names match the journal and the tables (``idle``, not ``IDLE``). Edges between the same
    two states are merged (``a | b``); guards read ``trigger [cond & !unless]``; internal rows read
    ``trigger [internal]``. The current-state highlight ``transitions`` adds is reset: this is a
    map of the machine, not a snapshot of one instance.

    Returns:
        The Mermaid text, byte-stable (see the module docstring).
    """
    rows = _rows()
    graph_machine = GraphMachine(
        states=[state.value for state in State],
        transitions=[
            {
                "trigger": row.trigger,
                "source": [state.value for state in row.sources],
                "dest": None if row.dest is None else row.dest.value,
                "conditions": list(row.conditions),
                "unless": list(row.unless),
            }
            for row in rows
        ],
        initial=State.IDLE.value,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title=_MERMAID_FRONT_MATTER_TITLE,
    )
    graph = graph_machine.model_graphs[id(graph_machine)]
    graph.reset_styling()
    source = graph.get_graph().draw(None)
    if source is None:  # pragma: no cover - draw(None) returns the text by contract
        raise RuntimeError("the transitions Mermaid engine returned no text")
    return _normalise(source)


# ---------------------------------------------------------------- DOT


def _dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _edge_label(row: Row) -> str:
    """``trigger [guard]`` in the Mermaid engine's notation, ``[internal]`` for internal rows."""
    label = row.trigger
    if row.dest is None:
        label += " [internal]"
    guards = [*row.conditions, *(f"!{name}" for name in row.unless)]
    if guards:
        label += " [" + " & ".join(guards) + "]"
    return label


def render_dot() -> str:
    """The table as a Graphviz DOT digraph, one edge per (row, source), in table order.

    Internal rows are dashed self-loops. The text needs no Graphviz to produce; render it with
    ``dot -Tsvg``.

    Returns:
        The DOT text, byte-stable.
    """
    lines = [
        f"digraph {_DOT_GRAPH_NAME} {{",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  __start__ [shape=point, label=""];',
    ]
    lines.extend(f"  {_dot_quote(state.value)};" for state in State)
    lines.append(f"  __start__ -> {_dot_quote(State.IDLE.value)};")
    for row in _rows():
        for source in row.sources:
            dest = source if row.dest is None else row.dest
            attributes = [f"label={_dot_quote(_edge_label(row))}"]
            if row.dest is None:
                attributes.append("style=dashed")
            lines.append(
                f"  {_dot_quote(source.value)} -> {_dot_quote(dest.value)}"
                f" [{', '.join(attributes)}];"
            )
    lines.append("}")
    return _normalise("\n".join(lines))


# ---------------------------------------------------------------- JSON


def render_json() -> str:
    """The table, the error classification and the invariants as one JSON document.

    Layout (``format_version`` 1): ``states`` and ``transitions`` in table order (row order is
    meaningful: the first row whose guard holds wins), ``triggers`` in first-use order,
    ``server_errors`` sorted by code, ``other_errors`` and ``invariants`` in document order.
    Object keys are sorted.

    Returns:
        Indented JSON text, byte-stable.
    """
    rows = _rows()
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "initial": State.IDLE.value,
        "states": [state.value for state in State],
        "triggers": list(_triggers(rows)),
        "transitions": [
            {
                "trigger": row.trigger,
                "sources": [state.value for state in row.sources],
                "dest": None if row.dest is None else row.dest.value,
                "internal": row.dest is None,
                "conditions": list(row.conditions),
                "unless": list(row.unless),
                "guard": row.guard,
                "before": list(row.before),
                "effects": row.effects,
            }
            for row in rows
        ],
        "server_errors": [
            {
                "code": spec.code,
                "message": spec.message,
                "class": spec.error_class.__name__,
                "fatal": spec.fatal,
                "rejects_change": spec.rejects_change,
            }
            for _, spec in sorted(errors.SERVER_ERRORS.items())
        ],
        "other_errors": [
            {
                "class": other.error_class.__name__,
                "fatal": other.error_class.fatal,
                "consequence": other.consequence,
            }
            for other in _OTHER_ERRORS
        ],
        "invariants": [
            {"number": invariant.number, "text": invariant.text, "tests": list(invariant.tests)}
            for invariant in INVARIANTS
        ],
    }
    return json.dumps(document, indent=_JSON_INDENT, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in body)
    return lines


def _code(text: str) -> str:
    """``text`` as inline code."""
    return f"`{text}`"


def _transition_rows(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """The cells of the transition table: # | trigger | from | to | guard | effects."""
    body: list[tuple[str, ...]] = []
    for index, row in enumerate(rows):
        if row.guard:
            guard = _code(row.guard)
        elif _is_fallback(rows, index):
            guard = "otherwise"
        else:
            guard = "always"
        body.append(
            (
                str(index + 1),
                _code(row.trigger),
                ", ".join(_code(state.value) for state in row.sources),
                "(stays)" if row.dest is None else _code(row.dest.value),
                guard,
                row.effects,
            )
        )
    return body


def _connection_limit_cooldown() -> float:
    """The default ``StreamConfig.connection_limit_cooldown``, in seconds."""
    default = attrs.fields(StreamConfig).connection_limit_cooldown.default
    if not isinstance(default, int | float):  # pragma: no cover - a plain default by design
        raise TypeError("StreamConfig.connection_limit_cooldown has no plain numeric default")
    return float(default)


def _server_error_consequence(spec: errors.ServerErrorSpec) -> str:
    """What the controller does on ``spec``'s code, derived from its classification."""
    if spec.fatal:
        parts = ["in `connecting`: `stopped` via `attempt_failed [is_fatal]`, never retried"]
    else:
        parts = ["in `connecting`: `backoff` or `circuit_open` via `attempt_failed`"]
    if spec.rejects_change:
        parts.append("while `subscribed`: the subscription change is rejected, the session stays")
    elif spec.fatal:
        parts.append("while `subscribed`: `stopped` via `connection_lost [is_fatal]`")
    else:
        parts.append("while `subscribed`: `backoff` or `circuit_open` via `connection_lost`")
    if spec.code == errors.ConnectionLimitError.code:
        parts.append(
            "the delay is the connection-limit cool-down (`connection_limit_cooldown`, default "
            f"{_connection_limit_cooldown():g} s) instead of the backoff delay, and the failure "
            "counts toward the breaker"
        )
    return "; ".join(parts)


def _error_rows() -> list[tuple[str, ...]]:
    """The cells of the server error table: code | message | class | fatal | what happens."""
    return [
        (
            str(spec.code),
            spec.message,
            _code(spec.error_class.__name__),
            "fatal" if spec.fatal else "transient",
            _server_error_consequence(spec),
        )
        for _, spec in sorted(errors.SERVER_ERRORS.items())
    ]


def _other_error_rows() -> list[tuple[str, ...]]:
    """The cells of the non-server error table: class | base | fatal | what happens."""
    return [
        (
            _code(other.error_class.__name__),
            _code(other.error_class.__mro__[1].__name__),
            "fatal" if other.error_class.fatal else "transient",
            other.consequence,
        )
        for other in _OTHER_ERRORS
    ]


def _invariant_rows() -> list[tuple[str, ...]]:
    """The cells of the invariant table: # | invariant | checked by."""
    return [
        (
            str(invariant.number),
            invariant.text,
            "<br>".join(_code(test) for test in invariant.tests),
        )
        for invariant in INVARIANTS
    ]


def render_document() -> str:
    """The full text of ``docs/state-diagram.md``: diagram, tables, invariants.

    Returns:
        Markdown text, byte-stable; GitHub renders its ```` ```mermaid ```` block as a diagram.
    """
    rows = _rows()
    lines = [
        "# streamfsm state diagram",
        "",
        "Generated from `streamfsm._core.machine.TRANSITIONS` by "
        f"`{_REGENERATE_COMMAND}`; do not edit by hand.",
        "",
        "This is what the controller does. What it did is in its transition journal; "
        "`streamfsm audit verify JOURNAL` checks the journal against this table "
        "(see [audit.md](audit.md)).",
        "",
        "## Diagram",
        "",
        "Edges read `trigger [guard]`: `a & b` means both guards hold, `!a` means `a` does not. "
        "An edge with no guard is taken when the guarded edges for the same trigger and state "
        "do not apply (rows are tried in table order). `[internal]` marks a transition that runs "
        "its effects and stays in its state without leaving it.",
        "",
        "```mermaid",
        render_mermaid().rstrip("\n"),
        "```",
        "",
        "## Transitions",
        "",
        "Rows are tried in this order for a trigger; the first whose guard holds wins. "
        "*otherwise* marks an unguarded row that applies only when the rows before it for the "
        "same trigger and state do not. *(stays)* is an internal transition: effects run, the "
        "state is not left. A row whose destination is its source (`restart` into `connecting` "
        "or `idle`, `start` from `idle`) leaves the state and enters it again.",
        "",
        *_table(("#", "trigger", "from", "to", "guard", "effects"), _transition_rows(rows)),
        "",
        "## Errors",
        "",
        "Every error is *fatal* (the lifecycle ends in `stopped` with the typed error, and it is "
        "never retried) or *transient* (`backoff`, or `circuit_open` when the breaker trips). "
        "A code that *rejects a change* only refuses one subscription change while `subscribed`.",
        "",
        "### Alpaca error codes",
        "",
        "From `streamfsm.errors.SERVER_ERRORS`. An undocumented code is a transient `ServerError`.",
        "",
        *_table(("code", "message", "class", "fatal or transient", "what happens"), _error_rows()),
        "",
        "### Other errors",
        "",
        *_table(("class", "base", "fatal or transient", "what happens"), _other_error_rows()),
        "",
        "## Invariants",
        "",
        "Each holds in every state and after every transition; the tests named check it.",
        "",
        *_table(("#", "invariant", "checked by"), _invariant_rows()),
        "",
        "## Regenerating",
        "",
        f"Run `{_REGENERATE_COMMAND}` (or `make diagram`) after changing the table, the error "
        f"table or the invariants; `{_CHECK_COMMAND}` fails while this file is stale.",
    ]
    return _normalise("\n".join(lines))


# ---------------------------------------------------------------- dispatch and drift


_RENDERERS: Final = {
    DiagramFormat.MERMAID: render_mermaid,
    DiagramFormat.DOT: render_dot,
    DiagramFormat.JSON: render_json,
    DiagramFormat.MARKDOWN: render_document,
}


def render(fmt: DiagramFormat) -> str:
    """The export in format ``fmt`` (see the ``render_*`` functions)."""
    return _RENDERERS[fmt]()


def check_file(path: Path, fmt: DiagramFormat = DiagramFormat.MARKDOWN) -> str:
    """Compare the file at ``path`` with a fresh render in format ``fmt``.

    Returns:
        An empty string when the file is byte-identical to the render, else a unified diff
        from the file to the render.

    Raises:
        OSError: when the file cannot be read.
        UnicodeDecodeError: when it is not UTF-8.
    """
    committed = path.read_bytes().decode("utf-8")
    expected = render(fmt)
    if committed == expected:
        return ""
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=f"{path} (committed)",
        tofile=f"{path} (generated from the table)",
        n=_DIFF_CONTEXT,
    )
    text = "".join(diff)
    # A difference in line endings only yields an empty line diff; still report it.
    return text or f"{path}: differs from the render in line endings or bytes only\n"


# ---------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamfsm diagram`` with the command line."""
    parser = subparsers.add_parser(
        "diagram",
        help="export the state diagram (Mermaid, DOT, JSON or the Markdown document)",
        description=(
            "Export the transition table. Prints Mermaid by default; --write and --check work on "
            f"the Markdown document unless --format says otherwise. `{_CHECK_COMMAND}` exits 1 "
            "with a diff when the committed document is stale."
        ),
    )
    parser.add_argument(
        "--format",
        choices=[fmt.value for fmt in DiagramFormat],
        default=None,
        help="output format (default: mermaid; markdown with --write and --check)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--output", type=Path, metavar="FILE", help="write to FILE")
    target.add_argument(
        "--write", type=Path, metavar="FILE", help="regenerate FILE (default format markdown)"
    )
    target.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="exit 1 with a diff when FILE differs from a fresh render",
    )


def _limited(diff: str) -> str:
    """``diff`` cut to :data:`_DIFF_LINES_SHOWN` lines, with a note on what was left out."""
    lines = diff.splitlines(keepends=True)
    if len(lines) <= _DIFF_LINES_SHOWN:
        return diff
    hidden = len(lines) - _DIFF_LINES_SHOWN
    return "".join(lines[:_DIFF_LINES_SHOWN]) + f"... ({hidden} more diff lines)\n"


def run(args: argparse.Namespace) -> int:
    """Run ``streamfsm diagram``; returns the exit status (0 ok, 1 drift or file error)."""
    file_mode = args.write is not None or args.check is not None
    default = DiagramFormat.MARKDOWN if file_mode else DiagramFormat.MERMAID
    fmt = default if args.format is None else DiagramFormat(args.format)
    if args.check is not None:
        try:
            diff = check_file(args.check, fmt)
        except (OSError, UnicodeDecodeError) as error:
            sys.stderr.write(f"streamfsm diagram: cannot read {args.check}: {error}\n")
            return _EXIT_DRIFT
        if diff:
            sys.stderr.write(_limited(diff))
            option = "" if fmt is DiagramFormat.MARKDOWN else f" --format {fmt.value}"
            sys.stderr.write(
                f"{args.check} is stale: regenerate it with "
                f"`streamfsm diagram{option} --write {args.check}`\n"
            )
            return _EXIT_DRIFT
        return _EXIT_OK
    text = render(fmt)
    destination: Path | None = args.write if args.write is not None else args.output
    if destination is None:
        sys.stdout.write(text)
        return _EXIT_OK
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(text.encode("utf-8"))
    except OSError as error:
        sys.stderr.write(f"streamfsm diagram: cannot write {destination}: {error}\n")
        return _EXIT_DRIFT
    return _EXIT_OK
