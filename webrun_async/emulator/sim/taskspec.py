"""Reading task and session fields from request bodies, accepting every documented variant.

The docs' pages disagree on field names and nesting. The emulator is liberal: `taskDetails` and
`prompt`, `startingPoint` and `startingUrl`, `profileId` and `environmentId`, `reachOutMode` and
`reach_out_mode`, and the `initialTask` > `task` > flat nesting are all accepted. Values of the
wrong type are always a 400; out-of-range numbers are clamped unless strict.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from webrun_async.emulator.errors import bad_param

__all__ = [
    "OUTPUT_TYPES",
    "SUBMITTED_DATA",
    "SessionOptions",
    "TaskSpec",
    "WebhookSpec",
    "is_loopback_host",
    "parse_session_options",
    "parse_task",
    "parse_webhook",
    "pick_task_object",
]

OUTPUT_TYPES = ("text", "structured_json", "structured_csv")
_OUTPUT_ALIASES = {"structured": "structured_json"}
_REACH_OUT_MODES = ("off", "guardrail_only", "full")

SUBMITTED_DATA = ("full_response", "ai_response", "just_ping")
MAX_DURATION_MS = (1000, 300000)
TOKEN_RANGE = (0, 100000)


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """Where a completed task is POSTed. `auth` (the `Authorization` value) is kept out of
    `repr`."""

    name: str
    url: str
    submitted_data: str
    auth: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The URL's host name or address, lower-cased."""
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task's parameters in canonical form. `secrets` are kept out of `repr`."""

    text: str = ""
    starting_url: str | None = None
    max_duration_ms: int = MAX_DURATION_MS[1]
    max_input_tokens: int = TOKEN_RANGE[1]
    max_output_tokens: int = TOKEN_RANGE[1]
    avoid_domains: tuple[str, ...] = ()
    terminate_on_completion: bool = False
    output_type: str = "text"
    output_schema: Any = None
    files: tuple[str, ...] = ()
    webhook: WebhookSpec | None = None
    secrets: Any = field(default=None, repr=False)
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Session-level parameters. `proxy` may hold credentials and is kept out of `repr`."""

    environment_id: str | None = None
    # Which name carried the id: an unknown id is "Profile not found" when it came as `profileId`.
    environment_field: str = "environmentId"
    policy_id: str | None = None
    reach_out_mode: str = "guardrail_only"
    mode: str = "default"
    proxy: Any = field(default=None, repr=False)


def pick_task_object(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object holding the task fields: `initialTask`, else `task`, else the body itself."""
    for key in ("initialTask", "task"):
        nested = body.get(key)
        if isinstance(nested, Mapping):
            return nested
    return body


def parse_task(obj: Mapping[str, Any], *, strict: bool, force_terminate: bool = False) -> TaskSpec:
    """Validate and normalise the task fields of `obj`.

    Raises:
        ApiError: 400 `INVALID_PARAMETER` naming the first bad field.
    """
    details = _opt_str(obj, "taskDetails")
    prompt = _opt_str(obj, "prompt")
    output_type = _opt_str(obj, "outputType") or "text"
    output_type = _OUTPUT_ALIASES.get(output_type, output_type)
    if output_type not in OUTPUT_TYPES:
        raise bad_param("outputType", f"must be one of {', '.join(OUTPUT_TYPES)}")
    terminate = _opt_bool(obj, "terminateOnCompletion")
    return TaskSpec(
        text=details or prompt or "",
        starting_url=_opt_str(obj, "startingPoint") or _opt_str(obj, "startingUrl"),
        max_duration_ms=_ranged_int(obj, "maxDuration", MAX_DURATION_MS, strict),
        max_input_tokens=_ranged_int(obj, "maxInputTokens", TOKEN_RANGE, strict),
        max_output_tokens=_ranged_int(obj, "maxOutputTokens", TOKEN_RANGE, strict),
        avoid_domains=_str_list(obj, "avoidDomains"),
        terminate_on_completion=force_terminate or bool(terminate),
        output_type=output_type,
        output_schema=_schema(obj),
        files=_str_list(obj, "files"),
        webhook=parse_webhook(obj.get("webhook")),
        secrets=_opt_list(obj, "secrets"),
        task_id=_opt_str(obj, "taskId") or None,
    )


def parse_session_options(
    body: Mapping[str, Any], task_obj: Mapping[str, Any], *, strict: bool
) -> SessionOptions:
    """Session-level fields, read from the top level first and then from the task object.

    Raises:
        ApiError: 400 `INVALID_PARAMETER` for a bad type, or a bad `mode`/`reachOutMode` in
            strict mode (the docs name no limit, so they are ignored otherwise).
    """
    sources = (body, task_obj) if task_obj is not body else (body,)

    def first_str(*names: str) -> str | None:
        for source in sources:
            for name in names:
                value = _opt_str(source, name)
                if value:
                    return value
        return None

    mode = first_str("mode") or "default"
    if mode != "default" and strict:
        raise bad_param("mode", "only 'default' is supported")
    reach = first_str("reachOutMode", "reach_out_mode") or "guardrail_only"
    if reach not in _REACH_OUT_MODES:
        if strict:
            raise bad_param("reachOutMode", f"must be one of {', '.join(_REACH_OUT_MODES)}")
        reach = "guardrail_only"
    proxy = None
    for source in sources:
        proxy = proxy or _opt_object(source, "proxy")
    environment_id = first_str("environmentId")
    environment_field = "environmentId"
    if environment_id is None:
        environment_id = first_str("profileId")
        environment_field = "profileId" if environment_id is not None else environment_field
    return SessionOptions(
        environment_id=environment_id,
        environment_field=environment_field,
        policy_id=first_str("policyId"),
        reach_out_mode=reach,
        mode="default",
        proxy=proxy,
    )


def parse_webhook(value: object, where: str = "webhook") -> WebhookSpec | None:
    """The `webhook` object of a task or cron job (`None` when absent).

    `name`, `url` (absolute http or https) and `submittedData` are required, `auth` optional,
    as the webhooks page documents. Whether the emulator may post to the URL's host is the
    engine's question, asked when the task is submitted.

    Raises:
        ApiError: 400 `INVALID_PARAMETER` naming the bad field (`webhook.url`, say).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise bad_param(where, "must be an object")
    fields: dict[str, str | None] = {}
    for name in ("name", "url", "auth", "submittedData"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise bad_param(f"{where}.{name}", "must be a string")
        if name != "auth" and not (item or "").strip():
            raise bad_param(f"{where}.{name}", "is required")
        fields[name] = item
    url = str(fields["url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_param(f"{where}.url", "must be an absolute http or https URL")
    submitted = str(fields["submittedData"])
    if submitted not in SUBMITTED_DATA:
        raise bad_param(f"{where}.submittedData", f"must be one of {', '.join(SUBMITTED_DATA)}")
    return WebhookSpec(str(fields["name"]), url, submitted, fields["auth"] or None)


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine: `localhost` or a loopback IP."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise bad_param(name, "must be a string")


def _opt_bool(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise bad_param(name, "must be a boolean")


def _opt_object(obj: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = obj.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise bad_param(name, "must be an object")


def _opt_list(obj: Mapping[str, Any], name: str) -> list[Any] | None:
    value = obj.get(name)
    if value is None or isinstance(value, list):
        return value
    raise bad_param(name, "must be an array")


def _str_list(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _opt_list(obj, name) or []
    if not all(isinstance(item, str) for item in value):
        raise bad_param(name, "must be an array of strings")
    return tuple(value)


def _schema(obj: Mapping[str, Any]) -> Any:
    value = obj.get("outputSchema")
    if value is None or isinstance(value, dict | list | bool):
        return value
    raise bad_param("outputSchema", "must be a JSON Schema object or an array of column names")


def _ranged_int(obj: Mapping[str, Any], name: str, bounds: tuple[int, int], strict: bool) -> int:
    low, high = bounds
    value = obj.get(name)
    if value is None:
        return high
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_param(name, "must be a number")
    if low <= value <= high:
        return int(value)
    if strict:
        raise bad_param(name, f"must be between {low} and {high}")
    return int(min(max(value, low), high))
