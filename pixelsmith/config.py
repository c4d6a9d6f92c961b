"""Typed, nested dataclass configs: YAML files, `key=value` overrides and clear errors."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from pixelsmith.errors import UserError


class _Loader(yaml.SafeLoader):
    """YAML without 1.1's base-60 numbers, so `domains: 7:9` is the text "7:9", not 429."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text (safe, without base-60 numbers)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Field metadata that keeps a key out of YAML files and --set (e.g. the run's family).
FIXED = {"fixed": True}


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted keys of a (nested) dataclass instance that may be set."""
    keys = []
    for f in dataclasses.fields(cfg):
        if f.metadata.get("fixed"):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{_describe(args[0])} or a comma-separated list of them"
        return f"a list of {len(args)} values"
    return str(tp)


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a parsed YAML value to the field type `tp`, or raise UserError naming `key`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, key)
            except UserError:
                pass
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        # Any number of values: a list, one value, or text such as "3,3,7".
        items = value.tolist() if hasattr(value, "tolist") else value  # tensors, arrays
        if isinstance(items, str):
            items = [v for v in (t.strip() for t in items.split(",")) if v]
            with contextlib.suppress(yaml.YAMLError):
                items = [yaml_load(v) for v in items]
        elif not isinstance(items, (list, tuple)):
            items = [items]
        elif not items:  # an empty list as saved (a model without context blocks)
            return ()
        if items:
            return tuple(coerce(args[0], v, key) for v in items)
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(coerce(a, v, key) for a, v in zip(args, value, strict=True))
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is Any:
        return value
    raise UserError(f"config key {key} expects {_describe(tp)}, got {value!r}")


def set_key(cfg: Any, key: str, value: Any, *, parse: bool = False) -> None:
    """Set a dotted key on a nested dataclass; `parse` reads a `value` string as YAML first,
    except for text fields, which take it as written (null and ~ still mean None)."""
    parts = key.split(".")
    target = cfg
    for part in parts[:-1]:
        sub = getattr(target, part, None) if dataclasses.is_dataclass(target) else None
        if not dataclasses.is_dataclass(sub):
            target = None
            break
        target = sub
    names = set()
    if target is not None:
        names = {f.name for f in dataclasses.fields(target) if not f.metadata.get("fixed")}
    if (
        target is None
        or parts[-1] not in names
        or dataclasses.is_dataclass(getattr(target, parts[-1]))
    ):
        raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys(cfg))}")
    tp = _hints(type(target))[parts[-1]]
    if parse and isinstance(value, str):
        if tp in (str, str | None) and value.strip() not in ("", "null", "~"):
            # Text fields take the text as written: YAML would turn "a: b" into a mapping,
            # "yes" into True and "1e3" into 1000.0.
            value = value.strip()
        else:
            with contextlib.suppress(yaml.YAMLError):
                value = yaml_load(value) if value.strip() else ""
    setattr(target, parts[-1], coerce(tp, value, key))


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested mapping into dotted keys."""
    out = {}
    for k, v in mapping.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def apply(cfg: Any, mapping: dict[str, Any]) -> None:
    """Apply a nested mapping (e.g. from YAML) onto a config, key by key."""
    for key, value in flatten(mapping).items():
        set_key(cfg, key, value)


def apply_overrides(cfg: Any, overrides: list[str]) -> None:
    """Apply `key=value` strings (values read as YAML) onto a config."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value; write e.g. --set train.batch=64")
        key, value = item.split("=", 1)
        set_key(cfg, key.strip(), value, parse=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file, with clear errors."""
    try:
        data = yaml_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; check the path") from None
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML ({e}); fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config (tuples as lists), for JSON and YAML."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(dataclasses.asdict(cfg))


def require(cond: bool, message: str) -> None:
    """Raise UserError(message) unless cond holds."""
    if not cond:
        raise UserError(message)
