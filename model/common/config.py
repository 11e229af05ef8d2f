"""What both trainers' configs share: a frozen dataclass that round-trips through JSON
(so checkpoints describe themselves) and takes `field=value` overrides from the CLI."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """Mixin for frozen dataclasses."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        raw = json.loads(text)
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if _is_tuple(hints[k]) else v for k, v in raw.items() if k in known})

    @classmethod
    def load(cls: type[C], path: Path) -> C:
        return cls.from_json(Path(path).read_text())


def _is_tuple(hint: Any) -> bool:
    return getattr(hint, "__origin__", None) is tuple


def parse_value(cls: type, name: str, text: str) -> Any:
    """Convert a command-line string to the type of field `name` of config class `cls`."""
    hints = get_type_hints(cls)
    if name not in hints:
        raise ValueError(f"unknown config field {name!r}; fields: {', '.join(hints)}")
    hint = hints[name]
    if _is_tuple(hint):
        elem = hint.__args__[0]
        parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(elem(float(p)) if elem is int else elem(p) for p in parts)
    if hint is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{name} expects true/false, got {text!r}")
        return text.lower() in ("true", "1")
    if hint is int:
        return int(float(text))  # accepts 1e5
    return hint(text)


def apply_overrides(cfg: C, overrides: list[str] | None) -> C:
    """Apply `field=value` strings, e.g. ["image_size=64", "epochs=5"]."""
    changes = {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not field=value")
        name, text = item.split("=", 1)
        changes[name.strip()] = parse_value(type(cfg), name.strip(), text.strip())
    return replace(cfg, **changes)
