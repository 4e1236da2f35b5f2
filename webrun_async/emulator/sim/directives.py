"""Scenario directives embedded in task text, e.g. `[[duration=3]]` or `[[fail=PAGE_CRASH]]`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Directives", "failure_message", "parse_directives", "strip_directives"]

# A value may not contain "[[" or "]]", so a stray "[[a=" never makes the scan quadratic.
_DIRECTIVE = re.compile(r"\[\[\s*([A-Za-z_]+)\s*=\s*((?:(?!\[\[|\]\]).)*?)\s*\]\]", re.DOTALL)

# Documented failure texts (errors reference); other codes get a generic sentence.
_FAILURE_TEXTS = {
    "NAVIGATION_TIMEOUT": "Navigation timeout after 30 seconds",
    "PAGE_CRASH": "Browser page crashed during execution",
    "ELEMENT_NOT_FOUND": "Could not locate element matching criteria",
    "SESSION_EXPIRED": "Session expired after 300 seconds of inactivity",
}

DEFAULT_EVENTS = 4
DEFAULT_FILE_SIZE = 1024
# Bounds that keep one task's simulation small whatever its text asks for.
MAX_EVENTS = 1000
MAX_FILES = 100
MAX_FILE_SIZE = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Directives:
    """What the task text asks the simulation to do. `None` means "not given"."""

    duration: float | None = None
    fail: str | None = None
    guardrail: str | None = None
    files: int = 0
    file_size: int = DEFAULT_FILE_SIZE
    events: int = DEFAULT_EVENTS


def parse_directives(text: str) -> Directives:
    """Read every `[[name=value]]`; unknown names and unparsable values are ignored.

    When a name repeats, the last occurrence wins.
    """
    values: dict[str, str] = {}
    for match in _DIRECTIVE.finditer(text):
        values[match.group(1).lower()] = match.group(2)
    return Directives(
        duration=_float(values.get("duration")),
        fail=(values.get("fail") or "").strip().upper() or None,
        guardrail=values.get("guardrail") or None,
        files=min(_count(values.get("files"), 0), MAX_FILES),
        file_size=min(_count(values.get("file_size"), DEFAULT_FILE_SIZE), MAX_FILE_SIZE),
        events=min(_count(values.get("events"), DEFAULT_EVENTS), MAX_EVENTS),
    )


def strip_directives(text: str) -> str:
    """The task text without its directives, whitespace collapsed."""
    return " ".join(_DIRECTIVE.sub(" ", text).split())


def failure_message(code: str, max_duration_ms: int) -> str:
    """The error text a task failing with `code` reports."""
    if code == "TASK_TIMEOUT":
        return f"Task exceeded maximum duration of {max_duration_ms}ms"
    return _FAILURE_TEXTS.get(code, f"Task failed with {code}")


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def _count(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        return default
