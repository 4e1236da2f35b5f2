"""The task options of ``webrun run`` and ``webrun batch``, described once.

``webrun run`` takes them as flags (``--start-url URL``); a line of a ``webrun batch`` file
takes them as JSON keys named after those flags (``"start_url": "..."``). Either way they
become the same keyword arguments of ``client.tasks.submit`` and are checked by the same
SDK code before anything is sent.
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from webrun_async import InvalidParameterError, TaskOptions

# The checks ``client.tasks.submit`` runs before it starts anything, called here without
# starting anything, so that a batch file is checked whole before its first task is sent.
from webrun_async._core.params import check_budget_options, session_fields
from webrun_async.resources.tasks import new_task_message

__all__ = [
    "OPTIONS",
    "TASK_KEY",
    "Option",
    "add_task_flags",
    "check_task",
    "describe_refusal",
    "flag_values",
    "json_value",
    "parameter_names",
    "unknown_key",
]

Kind = Literal["text", "seconds", "usd", "schema"]

TASK_KEY = "task"
"""The key of a batch line holding what the agent should do (``TASK`` of ``webrun run``)."""


@dataclass(frozen=True, slots=True)
class Option:
    """One task option.

    Attributes:
        key: Its name in a batch line, and the ``dest`` of its flag.
        flag: Its ``webrun run`` flag.
        parameter: The keyword argument of ``client.tasks.submit`` it sets.
        kind: What it holds: text, seconds, USD, or an output schema.
        metavar: The flag's value in ``--help``.
        help: What it does.
    """

    key: str
    flag: str
    parameter: str
    kind: Kind
    metavar: str
    help: str


OPTIONS: tuple[Option, ...] = (
    Option(
        "start_url", "--start-url", "starting_url", "text", "URL",
        "the page the agent starts from",
    ),
    Option(
        "max_duration", "--max-duration", "max_duration", "seconds", "SECONDS",
        "how long it may run (1-300)",
    ),
    Option(
        "max_cost", "--max-cost", "max_cost", "usd", "USD",
        "stop the task once it has cost more than this",
    ),
    Option(
        "output_schema", "--output-schema", "output_schema", "schema", "JSON",
        "structured output: a JSON schema object, or a JSON list of CSV column names, inline "
        "or in a file",
    ),
    Option(
        "environment", "--environment", "environment_id", "text", "ID",
        "an environment (or profile) to load the browser from",
    ),
)  # fmt: skip

_BY_KEY = {option.key: option for option in OPTIONS}
# Names people reach for that are spelled otherwise here: the SDK's, and the obvious short ones.
_ALIASES = {
    **{option.parameter: option.key for option in OPTIONS},
    "url": "start_url",
    "task_details": TASK_KEY,
    "environment_id": "environment",
    "profile_id": "environment",
}


def _schema_flag(text: str) -> Any:
    """An ``--output-schema`` value: a JSON schema (or a list of CSV column names) given
    inline as JSON, or the path of a file holding it."""
    source = ""
    if not text.lstrip().startswith(("{", "[")):
        try:
            with open(text, encoding="utf-8") as file:
                source, text = f" in {text}", file.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise argparse.ArgumentTypeError(f"cannot read {text}: {reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON{source}: {exc.msg}") from None
    if not isinstance(value, dict | list):
        raise argparse.ArgumentTypeError("must be a JSON object or a JSON list of column names")
    return value


def add_task_flags(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` one flag per task option."""
    converters: dict[Kind, Any] = {
        "text": str,
        "seconds": float,
        "usd": float,
        "schema": _schema_flag,
    }
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.key,
            metavar=option.metavar,
            type=converters[option.kind],
            help=option.help,
        )


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``client.tasks.submit`` keyword arguments the flags in ``args`` set."""
    values = {option.key: getattr(args, option.key) for option in OPTIONS}
    return _keywords(values)


def _keywords(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        _BY_KEY[key].parameter: value
        for key, value in values.items()
        if value is not None and key in _BY_KEY
    }


def unknown_key(key: str) -> str | None:
    """Why ``key`` is not an option of a batch line (``None`` when it is one)."""
    if key in _BY_KEY:
        return None
    names = [TASK_KEY, "id", *_BY_KEY]
    close = difflib.get_close_matches(key, [*names, *_ALIASES], n=1)
    hint = _ALIASES.get(key) or (_ALIASES.get(close[0], close[0]) if close else None)
    known = ", ".join(sorted(names))
    if hint is not None:
        return f'unknown option "{key}" (did you mean "{hint}"?)'
    return f'unknown option "{key}" (known: {known})'


def json_value(key: str, value: Any) -> str | None:
    """Why ``value`` is not of the right type for option ``key`` (``None`` when it is)."""
    kind = _BY_KEY[key].kind
    if value is None:
        return None  # null: as if left out
    if kind == "text":
        ok = isinstance(value, str)
        wanted = "a string"
    elif kind in ("seconds", "usd"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        wanted = "a number of seconds" if kind == "seconds" else "a number of USD"
    else:
        ok = isinstance(value, dict | list)
        wanted = "a JSON schema object or a list of CSV column names"
    if ok:
        return None
    return f'"{key}" must be {wanted}, got {_json_type(value)}'


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parameter_names() -> dict[str, str]:
    """SDK parameter name -> the batch key that sets it (to word the SDK's complaints)."""
    names = {option.parameter: option.key for option in OPTIONS}
    names["task_details"] = TASK_KEY
    return names


def check_task(task: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a task and its options as ``client.tasks.submit`` does, starting nothing.

    Args:
        task: What the agent should do.
        values: Option key -> JSON value (already of the right type, see :func:`json_value`).

    Returns:
        The keyword arguments for ``client.tasks.submit(task, **kwargs)``.

    Raises:
        InvalidParameterError: The SDK refuses them; ``parameter`` names its keyword.
    """
    kwargs = _keywords(values)
    options = dict(kwargs)
    session_fields(
        environment_id=options.pop("environment_id", None),
        profile_id=None,
        proxy=None,
        policy_id=None,
        reach_out_mode=None,
    )
    check_budget_options(options.pop("max_cost", None), None)
    schema = options.pop("output_schema", None)
    new_task_message(task, schema, cast(TaskOptions, {**options, "terminate_on_completion": True}))
    return kwargs


def describe_refusal(exc: InvalidParameterError) -> str:
    """An SDK refusal worded with the batch key instead of the SDK's parameter name."""
    key = parameter_names().get(exc.parameter, exc.parameter)
    return f'"{key}" {exc.problem}'
