"""The event payload's JSON Schema and a validator for tests and tools.

Owns: loading `event.schema.json` (shipped inside the package) and validating a payload against it.
Never: runs in the daemon's hot path (the payload is written by `Event.to_json` alone), and never
makes `jsonschema` a runtime dependency: it is imported only when `validate_event` is called.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "event.schema.json"


class EventSchemaError(ValueError):
    """A payload does not match the event schema; the message names the offending field."""


@cache
def event_schema() -> dict[str, Any]:
    """The parsed schema (read once; it is immutable package data)."""
    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_event(payload: dict[str, Any]) -> None:
    """Raise EventSchemaError if `payload` is not a valid event (needs the `jsonschema` package)."""
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - jsonschema is in the dev extra
        raise RuntimeError(
            "validate_event needs the jsonschema package (pip install jsonschema)"
        ) from exc
    validator = jsonschema.Draft202012Validator(event_schema())
    # best_match prefers the most specific error (e.g. "type: 'x' is not one of ...") over the
    # if/else wrapper that merely notices the same field.
    first = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if first is not None:
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise EventSchemaError(f"event {where}: {first.message}")
