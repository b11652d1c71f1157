"""`key=value,key=value` overrides of RunConfig fields, as `causvid-perf compare --a/--b` and
`stream --timesteps` take them: split (brackets and quotes kept whole) and typed by the field."""

from __future__ import annotations

import dataclasses
from typing import Any

from causvid_perf.config import RunConfig, parse_memory
from causvid_perf.errors import ConfigError

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunConfig)}


def parse_overrides(text: str) -> dict[str, Any]:
    """Parses 'sampler=euler,shift=8' into typed RunConfig field values; a value with commas is
    quoted: 'prompt="a cat, running",steps=4' (or with single quotes)."""
    overrides: dict[str, Any] = {}
    if not text.strip():
        return overrides
    raw_values: dict[str, str] = {}
    key = ""
    for part in _split_top_level(text):
        if "=" not in part:
            if key in _LIST_FIELDS and _is_number(part):
                raw_values[key] += "," + part  # timesteps=1000,750,500: the list goes on
                continue
            raise ConfigError(f"override {part!r} is not key=value (e.g. sampler=euler,shift=8)")
        key, raw = (s.strip() for s in part.split("=", 1))
        if key not in _FIELD_TYPES:
            raise ConfigError(f"unknown field {key!r} in {text!r}; fields: {', '.join(_FIELD_TYPES)}")
        raw_values[key] = _unquote(raw)
    for key, raw in raw_values.items():
        overrides[key] = _coerce(key, raw)
    return overrides


_LIST_FIELDS = ("timesteps",)


def _is_number(text: str) -> bool:
    try:
        float(text.strip().rstrip("]"))
    except ValueError:
        return False
    return True


_QUOTES = "\"'"


def _split_top_level(text: str) -> list[str]:
    # Split on commas, but keep bracketed lists (timesteps=[1000,757,522]) and quoted values
    # (prompt="a cat, running") whole. The standard library has no splitter that does both
    # (shlex and csv split inside brackets). A quote opens only at the start of a value, so an
    # apostrophe inside a plain value (prompt=a cat's toy) stays literal.
    parts, current, depth, quote, closed = [], "", 0, "", False
    for ch in text:
        if quote:
            if ch == quote:
                quote, closed = "", True
        elif ch == "," and depth == 0:
            parts.append(current)
            current, closed = "", False
            continue
        elif closed and not ch.isspace():
            raise ConfigError(
                f"{ch!r} after the closing quote in {current + ch!r}; quote the whole value, "
                'e.g. prompt="a cat, running"'
            )
        elif ch in _QUOTES and _at_value_start(current):
            quote = ch
        else:
            depth += (ch == "[") - (ch == "]")
        current += ch
    if quote:
        raise ConfigError(
            f'unterminated {quote} quote in {text!r}; close it after the value, e.g. prompt="a cat, running",steps=4'
        )
    parts.append(current)
    return [p for p in parts if p.strip()]


def _at_value_start(part: str) -> bool:
    """True when `part` is 'key=' so far (spaces allowed): where a quoted value may open."""
    _, equals, value = part.partition("=")
    return bool(equals) and not value.strip()


def _unquote(raw: str) -> str:
    # the splitter let a quote open only at the value's start and close only at its end
    return raw[1:-1] if raw and raw[0] in _QUOTES else raw


def _coerce(key: str, raw: str) -> Any:
    kind = str(_FIELD_TYPES[key])
    try:
        if key == "memory":
            return parse_memory(raw)
        if key == "timesteps":
            items = raw.strip("[]").replace(";", " ").replace(",", " ").split()
            return tuple(int(float(x)) for x in items)
        if raw.lower() == "none" and "None" in kind:
            return None
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"field {key!r} expects {kind}; got {raw!r}") from None
