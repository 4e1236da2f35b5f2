"""Checking user input before any request, and turning SDK options into wire Structs.

Every public method that starts a task accepts the same options (:class:`TaskOptions`); they
are validated here, once, so that bad input fails with :class:`InvalidParameterError` naming
the parameter before anything is sent.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, TypedDict, cast, get_args

import msgspec

from webrun_async._core.exceptions import InvalidParameterError, OutputValidationError
from webrun_async.types.files import UploadedFile
from webrun_async.types.tasks import (
    OutputType,
    Proxy,
    ReachOutMode,
    TaskResult,
    TaskSecret,
    Webhook,
)

__all__ = [
    "TASK_OPTION_NAMES",
    "OutputSpec",
    "TaskOptions",
    "check_id",
    "check_json_schema",
    "check_text",
    "keywords_of",
    "output_spec",
    "session_fields",
    "task_fields",
]

MAX_DURATION_SECONDS = 300.0
MIN_DURATION_SECONDS = 1.0
MAX_TOKENS = 100_000

_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_OUTPUT_TYPES: frozenset[str] = frozenset(get_args(OutputType))
_REACH_OUT: frozenset[str] = frozenset(get_args(ReachOutMode))


class TaskOptions(TypedDict, total=False):
    """Options accepted by every method that starts a task.

    Attributes:
        starting_url: The page the agent starts from (saves time and tokens).
        max_duration: Seconds (or a ``timedelta``) the task may run, 1 to 300.
        max_input_tokens: Input token cap, 0 to 100,000.
        max_output_tokens: Output token cap, 0 to 100,000.
        avoid_domains: Domains the agent must not visit.
        output_type: ``"text"``, ``"structured_json"`` or ``"structured_csv"``; inferred from
            ``output_schema`` when left out.
        secrets: Credentials for matching sites: :class:`TaskSecret` objects or a mapping of
            match pattern to fields. Never logged or shown.
        files: Uploaded file ids (or :class:`UploadedFile` objects) the agent may use.
        webhook: Where the server posts the result.
        terminate_on_completion: End the session once this task ends.
    """

    starting_url: str
    max_duration: float | timedelta
    max_input_tokens: int
    max_output_tokens: int
    avoid_domains: Sequence[str]
    output_type: OutputType
    secrets: Sequence[TaskSecret] | Mapping[str, Mapping[str, str]]
    files: Sequence[str | UploadedFile]
    webhook: Webhook
    terminate_on_completion: bool


_OPTION_NAMES = frozenset(TaskOptions.__annotations__)
TASK_OPTION_NAMES = _OPTION_NAMES
"""The names of :class:`TaskOptions`."""


def check_id(name: str, value: object) -> str:
    """An id that is safe to put in a URL path."""
    if not isinstance(value, str):
        raise InvalidParameterError(name, f"must be a string id, got {type(value).__name__}")
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise InvalidParameterError(
            name, "must be a non-empty id of letters, digits, '_', '-' or '.' (at most 128)"
        )
    return value


def check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """A string, non-blank unless ``allow_empty``."""
    if not isinstance(value, str):
        raise InvalidParameterError(name, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidParameterError(name, "must not be empty")
    return value


def check_choice(name: str, value: object, choices: frozenset[str]) -> str:
    """One of a fixed set of strings."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidParameterError(
            name, f"must be one of {', '.join(sorted(choices))}; got {value!r}"
        )
    return value


def check_budget_options(max_cost: object, on_guardrail: object) -> None:
    """Check a handle's ``max_cost`` (positive USD) and ``on_guardrail`` (callable).

    Raises:
        InvalidParameterError: Either is bad.
    """
    if max_cost is not None and (
        isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost <= 0
    ):
        raise InvalidParameterError(
            "max_cost", f"must be a positive number of USD, got {max_cost!r}"
        )
    if on_guardrail is not None and not callable(on_guardrail):
        raise InvalidParameterError("on_guardrail", "must be an async callable")


def check_reach_out(value: object) -> ReachOutMode:
    """A ``reach_out_mode`` value."""
    return cast(ReachOutMode, check_choice("reach_out_mode", value, _REACH_OUT))


def _duration_ms(value: object) -> int:
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidParameterError(
            "max_duration", f"must be seconds or a timedelta, got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or not (MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS):
        hint = ""
        if seconds > MAX_DURATION_SECONDS and seconds / 1000 <= MAX_DURATION_SECONDS:
            hint = f" (it is in seconds, not milliseconds: did you mean {seconds / 1000:g}?)"
        raise InvalidParameterError(
            "max_duration",
            f"must be between {MIN_DURATION_SECONDS:g} and {MAX_DURATION_SECONDS:g} seconds, "
            f"got {value!r}{hint}",
        )
    return round(seconds * 1000)


def _tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(name, f"must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidParameterError(name, f"must be between 0 and {MAX_TOKENS}, got {value}")
    return value


def _strings(name: str, value: object) -> list[str]:
    # A bare string is a sequence of characters: almost always a mistake here.
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidParameterError(name, "must be a list of strings, not a single value")
    items = list(value)
    for item in items:
        check_text(f"{name}[]", item)
    return items


def _secrets(value: object) -> list[TaskSecret]:
    if isinstance(value, Mapping):
        out: list[TaskSecret] = []
        for match, fields in value.items():
            check_text("secrets (match pattern)", match)
            if not isinstance(fields, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
            ):
                raise InvalidParameterError(
                    "secrets", f"the fields for {match!r} must map names to string values"
                )
            out.append(TaskSecret(match=match, fields=dict(fields)))
        return out
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidParameterError("secrets", "must be a list of TaskSecret or a mapping")
    items = list(value)
    for item in items:
        if not isinstance(item, TaskSecret):
            raise InvalidParameterError(
                "secrets", f"items must be TaskSecret, got {type(item).__name__}"
            )
    return items


def _file_ids(value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidParameterError("files", "must be a list of file ids, not a single value")
    return [
        item.file_id if isinstance(item, UploadedFile) else check_id("files[]", item)
        for item in value
    ]


def session_fields(
    *,
    environment_id: object,
    profile_id: object,
    proxy: object,
    policy_id: object,
    reach_out_mode: object,
) -> dict[str, Any]:
    """Validate the session-level options and return the wire Struct fields they set."""
    fields: dict[str, Any] = {}
    if environment_id is not None:
        fields["environment_id"] = check_id("environment_id", environment_id)
    if profile_id is not None:
        fields["profile_id"] = check_id("profile_id", profile_id)
    if proxy is not None:
        if not isinstance(proxy, Proxy):
            raise InvalidParameterError("proxy", f"must be a Proxy, got {type(proxy).__name__}")
        fields["proxy"] = proxy
    if policy_id is not None:
        fields["policy_id"] = check_id("policy_id", policy_id)
    if reach_out_mode is not None:
        fields["reach_out_mode"] = check_reach_out(reach_out_mode)
    return fields


def keywords_of(method: Callable[..., Any], *, forced: Collection[str] = ()) -> frozenset[str]:
    """The keyword arguments `method` takes: its keyword-only ones, and :class:`TaskOptions`
    (less those it sets itself, `forced`) when it takes ``**options``.

    Computed once per method, at import, for the unknown-option error.
    """
    names: set[str] = set()
    for parameter in inspect.signature(method).parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            names.add(parameter.name)
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            names |= _OPTION_NAMES - set(forced)
    return frozenset(names)


def task_fields(
    options: Mapping[str, Any], spec: OutputSpec, accepted: Collection[str] = _OPTION_NAMES
) -> dict[str, Any]:
    """Validate :class:`TaskOptions` and return the wire Struct fields they set.

    The start URL is returned under ``starting_url``; callers rename it for the endpoint. An
    unknown option is refused with the list of what the calling method takes (`accepted`).
    """
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise InvalidParameterError(
            sorted(unknown)[0], f"is not a task option (known: {', '.join(sorted(accepted))})"
        )
    fields: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "starting_url":
            fields[name] = check_text(name, value)
        elif name == "max_duration":
            fields[name] = _duration_ms(value)
        elif name in ("max_input_tokens", "max_output_tokens"):
            fields[name] = _tokens(name, value)
        elif name == "avoid_domains":
            fields[name] = _strings(name, value)
        elif name == "output_type":
            continue  # folded into the output spec by output_spec()
        elif name == "secrets":
            fields[name] = _secrets(value)
        elif name == "files":
            fields[name] = _file_ids(value)
        elif name == "webhook":
            if not isinstance(value, Webhook):
                raise InvalidParameterError(name, "must be a Webhook")
            fields[name] = value
        elif name == "terminate_on_completion":
            if not isinstance(value, bool):
                raise InvalidParameterError(name, "must be a bool")
            fields[name] = value
    if spec.output_type is not None:
        fields["output_type"] = spec.output_type
        fields["output_schema"] = spec.schema
    return fields


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What output was asked for, and how to decode ``TaskResult.message`` into ``output``."""

    output_type: OutputType | None = None
    schema: dict[str, Any] | list[str] | None = None
    decode: Callable[[str], Any] | None = None

    def apply(self, result: TaskResult[Any]) -> TaskResult[Any]:
        """Return ``result`` with ``output`` decoded, or raise if it does not match."""
        if self.decode is None:
            return result
        try:
            output = self.decode(result.message)
        except (msgspec.DecodeError, msgspec.ValidationError, csv.Error, ValueError) as exc:
            raise OutputValidationError(
                f"the task's output does not match the requested schema: {exc}", result=result
            ) from None
        return msgspec.structs.replace(result, output=output)


TEXT_OUTPUT = OutputSpec()


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref``s into ``$defs`` with the definitions themselves.

    The service documents plain JSON Schema objects (types, properties, items, required); it
    does not promise to resolve references, so the schema is sent self-contained.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:
                    raise InvalidParameterError(
                        "output_schema", f"{name} refers to itself; recursive types cannot be sent"
                    )
                return walk(defs[name], (*seen, name))
            return {k: walk(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    return cast(dict[str, Any], walk(schema, ()))


@lru_cache(maxsize=256)
def _typed_spec(tp: Any) -> OutputSpec:
    try:
        schema = _inline_refs(msgspec.json.schema(tp))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            "output_schema", f"cannot describe {tp!r} as a JSON schema: {exc}"
        ) from None
    check_json_schema(schema, f"the JSON schema of {getattr(tp, '__name__', tp)!s}")
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(tp)
    return OutputSpec("structured_json", schema, decoder.decode)


_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def check_json_schema(schema: Mapping[str, Any], what: str = "") -> None:
    """Check the parts of a JSON schema the service reads: types, properties, items, required.

    The top level must describe an object or an array: a structured output is one of those.
    Problems name their place in the schema (``$.properties.price.type``).

    Raises:
        InvalidParameterError: ``output_schema`` is not a usable schema.
    """

    def fail(where: str, problem: str) -> None:
        prefix = f"{what}: " if what else ""
        raise InvalidParameterError("output_schema", f"{prefix}{problem} at {where}")

    stack: list[tuple[Any, str]] = [(schema, "$")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, bool):
            continue  # true / false are schemas too
        if not isinstance(node, Mapping):
            fail(where, f"expected a schema object, got {type(node).__name__}")
            continue
        kind = node.get("type")
        kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else None
        if kind is not None and (
            kinds is None or not kinds or any(k not in _JSON_TYPES for k in kinds)
        ):
            known = ", ".join(sorted(_JSON_TYPES))
            fail(f"{where}.type", f"unknown type {kind!r} (known: {known})")
        properties = node.get("properties")
        if properties is not None:
            if not isinstance(properties, Mapping):
                fail(f"{where}.properties", "properties must be an object of schemas")
            else:
                stack += [(sub, f"{where}.properties.{name}") for name, sub in properties.items()]
        required = node.get("required")
        if required is not None and (
            not isinstance(required, list) or not all(isinstance(n, str) for n in required)
        ):
            fail(f"{where}.required", "required must be a list of property names")
        items = node.get("items")
        if items is not None:
            stack.append((items, f"{where}.items"))
        extra = node.get("additionalProperties")
        if extra is not None and not isinstance(extra, bool):
            stack.append((extra, f"{where}.additionalProperties"))
        for key in _SCHEMA_LISTS:
            subs = node.get(key)
            if subs is None:
                continue
            if not isinstance(subs, list):
                fail(f"{where}.{key}", f"{key} must be a list of schemas")
            else:
                stack += [(sub, f"{where}.{key}[{index}]") for index, sub in enumerate(subs)]
    top = schema.get("type")
    if top is not None and not ({top} if isinstance(top, str) else set(top)) & {"object", "array"}:
        fail("$.type", f"a structured output must be an object or an array, not {top!r}")


def _decode_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def output_spec(output_schema: object, output_type: object = None) -> OutputSpec:
    """Work out the output type, the schema to send and how to decode the answer.

    ``output_schema`` may be a type msgspec can describe (a Struct, a dataclass, ``list[X]``,
    ...): its JSON schema is sent and the answer is decoded into it. A dict is sent as the JSON
    schema and the answer decoded into plain Python values. A list of column names asks for CSV,
    decoded into a list of row dicts.
    """
    if output_type is not None:
        check_choice("output_type", output_type, _OUTPUT_TYPES)
    if output_schema is None:
        if output_type in ("structured_json", "structured_csv"):
            raise InvalidParameterError(
                "output_schema", f"is required when output_type is {output_type!r}"
            )
        return OutputSpec("text") if output_type == "text" else TEXT_OUTPUT
    if isinstance(output_schema, Mapping):
        if output_type not in (None, "structured_json"):
            raise InvalidParameterError("output_type", "a dict schema asks for structured_json")
        schema = dict(output_schema)
        check_json_schema(schema)
        return OutputSpec("structured_json", schema, msgspec.json.decode)
    if isinstance(output_schema, Sequence) and not isinstance(output_schema, str | bytes):
        columns = _strings("output_schema", output_schema)
        if not columns:
            raise InvalidParameterError("output_schema", "needs at least one CSV column")
        if output_type not in (None, "structured_csv"):
            raise InvalidParameterError("output_type", "a list of columns asks for structured_csv")
        return OutputSpec("structured_csv", columns, _decode_csv)
    if isinstance(output_schema, str | bytes):
        raise InvalidParameterError(
            "output_schema", "must be a type, a JSON schema dict or a list of CSV columns"
        )
    if output_type not in (None, "structured_json"):
        raise InvalidParameterError("output_type", "a typed schema asks for structured_json")
    return _typed_spec(output_schema)
