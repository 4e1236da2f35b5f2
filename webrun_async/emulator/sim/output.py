"""Deterministic task results: a sentence, JSON matching `outputSchema`, or CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .directives import strip_directives

__all__ = ["result_message", "sample_for_schema"]

_MAX_ITEMS = 50
_LARGEST = 1e300
_MAX_DEPTH = 12
_SUMMARY_CHARS = 160
_FORMAT_SAMPLES = {
    "date-time": "2024-01-15T10:30:00.000Z",
    "date": "2024-01-15",
    "time": "10:30:00",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}


def result_message(text: str, output_type: str, schema: Any) -> str:
    """The `data.message` of a completed task."""
    if output_type == "structured_json":
        if schema is None or schema is True or schema == {}:
            value: Any = {"result": _sentence(text)}
        else:
            try:
                value = sample_for_schema(schema)
            except (TypeError, ValueError, OverflowError, RecursionError):
                # A schema too odd to follow (a property list that is not one, a bound past
                # float range...): the answer is still JSON, as the service's would be.
                value = {"result": _sentence(text)}
        return msgspec.json.encode(value).decode()
    if output_type == "structured_csv":
        return _csv(schema)
    return _sentence(text)


def _sentence(text: str) -> str:
    summary = strip_directives(text)
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[: _SUMMARY_CHARS - 3].rstrip() + "..."
    return f'Completed the task "{summary}" in the emulator.' if summary else "Task completed."


def sample_for_schema(schema: Any, root: Any = None, name: str = "value", depth: int = 0) -> Any:
    """A value matching a JSON Schema, derived deterministically from property names.

    Handles `$ref` into the same document, `enum`, `const`, `anyOf`/`oneOf` (first branch),
    `allOf` (merged), nullable type lists, objects (every property plus `required`), arrays
    (3 items within `minItems`/`maxItems`) and common string formats.
    """
    root = schema if root is None else root
    if depth > _MAX_DEPTH or schema is False:
        return None
    if not isinstance(schema, Mapping):
        return _string_for(name, None)
    if "$ref" in schema:
        return sample_for_schema(_resolve(root, schema["$ref"]), root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return sample_for_schema(branches[0], root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        schema = _merge_all_of(schema, root)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, name, depth)
    if kind == "integer":
        return int(_bounded(schema, 42))
    if kind == "number":
        return float(_bounded(schema, 42.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(name, schema.get("format"))


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        # Nullable types such as ["string", "null"]: use the non-null one.
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _object(schema: Mapping[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    value = {
        key: sample_for_schema(sub, root, str(key), depth + 1) for key, sub in properties.items()
    }
    required = schema.get("required")
    extra = schema.get("additionalProperties")
    for key in required if isinstance(required, list) else []:
        if isinstance(key, str) and key not in value:
            value[key] = sample_for_schema(
                extra if isinstance(extra, Mapping) else {}, root, key, depth + 1
            )
    return value


def _array(schema: Mapping[str, Any], root: Any, name: str, depth: int) -> list[Any]:
    count = 3
    if isinstance(schema.get("minItems"), int):
        count = max(count, schema["minItems"])
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    count = max(0, min(count, _MAX_ITEMS))  # a sample, not the million items a schema may ask
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):  # draft-07 tuple form
        prefix, items = items, schema.get("additionalItems")
    item_name = name[:-1] if name.endswith("s") and len(name) > 1 else name
    values: list[Any] = []
    for index in range(count):
        if isinstance(prefix, list) and index < len(prefix):
            sub = prefix[index]
        else:
            sub = items if isinstance(items, Mapping) else {}
        values.append(sample_for_schema(sub, root, f"{item_name} {index + 1}", depth + 1))
    return values


def _merge_all_of(schema: Mapping[str, Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[Any] = list(merged.get("required") or [])
    for part in schema["allOf"]:
        for _ in range(_MAX_DEPTH):  # a $ref cycle is cut, not followed forever
            if not (isinstance(part, Mapping) and "$ref" in part):
                break
            part = _resolve(root, part["$ref"])
        if not isinstance(part, Mapping):
            continue
        if isinstance(part.get("properties"), Mapping):
            properties.update(part["properties"])
        if isinstance(part.get("required"), list):
            required.extend(part["required"])
        for key, sub in part.items():
            merged.setdefault(key, sub)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _resolve(root: Any, ref: Any) -> Any:
    """Follow a local JSON pointer such as `#/$defs/Item`; anything else resolves to `{}`."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node = root
    for raw in ref[1:].split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return {}
    return node


def _bounded(schema: Mapping[str, Any], default: float) -> float:
    value = default
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float) and value < low:
        value = low
    if isinstance(high, int | float) and value > high:
        value = high
    return value if abs(value) < _LARGEST else default  # float() of it must not overflow


def _string_for(name: str, fmt: Any) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "value"
    if fmt == "email":
        return f"{slug}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{slug}"
    if isinstance(fmt, str) and fmt in _FORMAT_SAMPLES:
        return _FORMAT_SAMPLES[fmt]
    return f"Sample {name}"


def _columns(schema: Any) -> list[str]:
    if isinstance(schema, list):
        return [str(column) for column in schema] or ["result"]
    if isinstance(schema, Mapping):
        if isinstance(schema.get("items"), Mapping):
            schema = schema["items"]
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and properties:
            return [str(key) for key in properties]
        if isinstance(schema.get("columns"), list):
            return _columns(schema["columns"])
    return ["result"]


def _csv(schema: Any) -> str:
    columns = _columns(schema)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in range(1, 4):
        writer.writerow([f"{column} {row}" for column in columns])
    return buffer.getvalue()
