"""Typed options of an operation on images, declared once and read by every door.

An option knows its name, help, default and allowed values, and from that:
- `parse` checks a value given in Python, or as text (a command-line flag, an HTTP form field),
  and returns it typed, or raises UserError with one sentence naming the option;
- `add_to` adds it to an argparse parser (`--name-with-dashes`);
- `card` describes it for `GET /v1/edits` and the web page's form, `schema` for OpenAPI.

`local` options name files on the machine that runs the command (a model of your own, a boxes
file): the command line and Python take them, the service never offers them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pixelsmith.errors import UserError


@dataclass(frozen=True)
class Option:
    """One option: a name (snake_case; the CLI flag is --name-with-dashes), help and default."""

    name: str
    help: str
    default: Any = None
    local: bool = False
    kind: str = field(default="text", init=False)

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """The value checked and typed (None = the default)."""
        if value is None or value == "":
            return self.default
        return str(value)

    def card(self) -> dict[str, Any]:
        """What GET /v1/edits and the web page say of it."""
        return {"name": self.name, "type": self.kind, "default": self.default, "help": self.help}

    def schema(self) -> dict[str, Any]:
        """Its JSON schema (as a form field or JSON property)."""
        return {"type": "string", "description": self.help}

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add it to a command-line parser (values are parsed by `parse`, after argparse)."""
        parser.add_argument(self.flag, dest=self.name, metavar=self.metavar(), help=self.cli_help())

    def metavar(self) -> str:
        return self.name.upper()

    def cli_help(self) -> str:
        shown = self.default_text()
        return self.help + (f" (default {shown})" if shown else "")

    def default_text(self) -> str:
        return "" if self.default is None else str(self.default)

    def _bad(self, allowed: str, got: Any) -> UserError:
        return UserError(f"{self.name} must be {allowed}, got {got!r}")


@dataclass(frozen=True)
class Choice(Option):
    """One of a fixed set of values (strings or whole numbers); the first is the default."""

    choices: tuple[Any, ...] = ()
    auto: str = ""  # what leaving it unset means, when that is not simply the first choice
    kind: str = field(default="choice", init=False)

    def __post_init__(self) -> None:
        if self.default is None and self.choices and not self.auto:
            object.__setattr__(self, "default", self.choices[0])

    def parse(self, value: Any) -> Any:
        if value is None or value == "":
            return self.default
        for c in self.choices:
            if value == c or str(value).strip() == str(c):
                return c
        raise self._bad(f"one of {', '.join(map(str, self.choices))}", value)

    def card(self) -> dict[str, Any]:
        return {**super().card(), "choices": list(self.choices), "auto": self.auto or None}

    def default_text(self) -> str:
        return (
            f"auto: {self.auto}" if self.default is None and self.auto else super().default_text()
        )

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "enum": [str(c) for c in self.choices]}

    def metavar(self) -> str:
        return "{" + ",".join(map(str, self.choices)) + "}"


@dataclass(frozen=True)
class Number(Option):
    """A whole or real number within [low, high]; `auto` names what None means, if it may be
    left unset (e.g. an estimated noise level)."""

    whole: bool = False
    low: float | None = None
    high: float | None = None
    auto: str = ""
    kind: str = field(default="number", init=False)

    def __post_init__(self) -> None:
        if self.whole and (self.low is None or self.high is None):
            # a whole number without bounds reaches code that cannot take it (seeds past 2^64,
            # sizes that would allocate terabytes): every declaration states its range
            raise ValueError(f"whole-number option {self.name!r} needs low and high")

    def _range(self) -> str:
        what = "a whole number" if self.whole else "a number"
        if self.low is not None and self.high is not None:
            what += f" from {self.low:g} to {self.high:g}"
        elif self.low is not None:
            what += f" of at least {self.low:g}"
        elif self.high is not None:
            what += f" of at most {self.high:g}"
        return what + (f", or auto ({self.auto})" if self.auto else "")

    def parse(self, value: Any) -> Any:
        if value is None or value == "" or (self.auto and str(value).strip().lower() == "auto"):
            if self.default is None and not self.auto:
                raise self._bad(self._range(), value)
            return self.default
        if isinstance(value, bool):
            raise self._bad(self._range(), value)
        if isinstance(value, str):
            text = value.strip()
            try:
                number: float = int(text) if self.whole else float(text)
            except ValueError:
                raise self._bad(self._range(), value) from None
        elif isinstance(value, int | float):
            number = value
        else:
            raise self._bad(self._range(), value)
        if self.whole and (not float(number).is_integer()):
            raise self._bad(self._range(), value)
        if not math.isfinite(number):
            raise self._bad(self._range(), value)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            raise self._bad(self._range(), value)
        return int(number) if self.whole else float(number)

    def card(self) -> dict[str, Any]:
        return {**super().card(), "whole": self.whole, "min": self.low, "max": self.high,
                "auto": self.auto or None}  # fmt: skip

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "type": "integer" if self.whole else "number",
            "description": self.help,
        }
        if self.low is not None:
            s["minimum"] = self.low
        if self.high is not None:
            s["maximum"] = self.high
        if self.auto:
            s = {"anyOf": [s, {"type": "string", "enum": ["auto"]}], "description": self.help}
        return s

    def metavar(self) -> str:
        return "N" if self.whole else "X"

    def default_text(self) -> str:
        if self.default is None:
            return self.auto and f"auto: {self.auto}"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


@dataclass(frozen=True)
class Several(Option):
    """An ordered list of values from a fixed set, given as a list or as comma-separated text;
    `repeats` says whether a value may come twice."""

    choices: tuple[str, ...] = ()
    repeats: bool = True
    kind: str = field(default="list", init=False)

    def parse(self, value: Any) -> tuple[str, ...]:
        if value is None or value == "" or value == []:
            return tuple(self.default)
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, Sequence):
            items = [str(v).strip() for v in value]
        else:
            items = []
        allowed = f"one or more of {', '.join(self.choices)} (comma-separated, in order)"
        if not items or any(v not in self.choices for v in items):
            raise self._bad(allowed, value)
        if not self.repeats and len(set(items)) != len(items):
            raise UserError(f"{self.name} names each value once, got {','.join(items)}")
        return tuple(items)

    def card(self) -> dict[str, Any]:
        return {**super().card(), "default": list(self.default), "choices": list(self.choices)}

    def schema(self) -> dict[str, Any]:
        names = ", ".join(self.choices)
        return {"type": "string", "description": f"{self.help} (comma-separated from {names})"}

    def metavar(self) -> str:
        return "A,B,..."

    def cli_help(self) -> str:
        return f"{super().cli_help()}; from {', '.join(self.choices)}"

    def default_text(self) -> str:
        return ",".join(self.default)


@dataclass(frozen=True)
class File(Option):
    """A file or run on this machine (a model of your own, a boxes file): local only."""

    local: bool = True
    kind: str = field(default="file", init=False)

    def metavar(self) -> str:
        return "PATH"


def parse_all(
    options: Sequence[Option], given: dict[str, Any], what: str, remote: bool = False
) -> dict[str, Any]:
    """Every option of an operation checked and typed, defaults filled in; an unknown name
    (or, with `remote`, a local one, which keeps its default) is refused naming the ones there
    are."""
    offered = [o.name for o in options if not (remote and o.local)]
    unknown = sorted(k for k in given if k not in offered)
    if unknown:
        names = ", ".join(offered) or "none"
        raise UserError(f"{what} takes no option {unknown[0]!r}; its options: {names}")
    return {o.name: o.parse(given.get(o.name)) for o in options}
