"""Request bodies read into memory under a size cap, and multipart forms parsed there.

Starlette's own form parser spools any file part over 1 MB to a temporary file on disk; uploads
here never touch the disk, so the body is read (streamed, refused the moment it passes the cap)
and split into parts in memory with python-multipart's low-level parser.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pixelsmith.errors import UserError


class TooLarge(UserError):
    """A body over the cap (answered 413)."""


class WrongType(UserError):
    """A body of the wrong media type (answered 415)."""


@dataclass(frozen=True)
class Part:
    """One field of a multipart form: its bytes, and the file name and type for a file part."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    def text(self) -> str:
        """The field's value as text."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"form field {self.name!r} is not UTF-8 text") from None


async def read_body(chunks: AsyncIterator[bytes], limit: int, declared: str | None = None) -> bytes:
    """The whole body, refused (TooLarge) as soon as it, or its Content-Length, passes `limit`."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is over {_size(limit)}")
    out = bytearray()
    async for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise TooLarge(f"the request body is over {_size(limit)}")
    return bytes(out)


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n // 2**10} KiB"


def parse_form(body: bytes, content_type: str, max_parts: int = 64) -> dict[str, Part]:
    """The parts of a multipart/form-data body by field name; a name sent twice is refused
    (which of two images, or of two operations, was meant cannot be guessed)."""
    from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        shown = kind.decode("latin-1") or "none"
        raise WrongType(f"this endpoint takes multipart/form-data, not {shown}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise UserError("the multipart body names no boundary")
    parts: list[Part] = []
    state: dict = {}

    def begin() -> None:
        state.update(headers={}, field=b"", value=b"", data=bytearray())

    def header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def data(data: bytes, start: int, end: int) -> None:
        state["data"] += data[start:end]

    def end() -> None:
        if len(parts) >= max_parts:
            raise UserError(f"the form has more than {max_parts} parts")
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name")
        if name is None:
            raise UserError("a form part has no name")
        filename = disp.get(b"filename")
        ctype = state["headers"].get(b"content-type")
        parts.append(
            Part(
                name.decode("utf-8", "replace"),
                bytes(state["data"]),
                None if filename is None else filename.decode("utf-8", "replace"),
                None if ctype is None else ctype.decode("latin-1"),
            )
        )

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_part_data": data,
        "on_part_end": end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"the multipart body cannot be parsed ({type(e).__name__})") from None
    if parser.state != MultipartState.END:  # finalize() accepts a body cut off mid-part
        raise UserError("the multipart body is cut short (no closing boundary); send it whole")
    named: dict[str, Part] = {}
    for part in parts:
        if part.name in named:
            raise UserError(f"the form has more than one part named {part.name!r}; send one")
        named[part.name] = part
    return named


class BodyCap:
    """ASGI middleware: a POST body is read whole, in memory, before its route runs, and
    refused with a 413 in the error shape the moment it (or its Content-Length) passes the cap
    for its path (`cap(path)`; None leaves the request alone). A JSON path's body is read as
    JSON whatever its declared type (`curl -d` sends form-urlencoded)."""

    def __init__(self, app: Any, cap: Callable[[str], int | None], json_paths: set[str]) -> None:
        self.app, self.cap, self.json_paths = app, cap, json_paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        limit = self.cap(scope["path"]) if scope["type"] == "http" else None
        if limit is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            body = await read_body(
                _chunks(receive),
                limit,
                headers.get(b"content-length", b"").decode("latin-1") or None,
            )
        except TooLarge as e:
            await _send_error(send, 413, str(e))
            return
        except _Gone:
            return
        if scope["path"] in self.json_paths:
            kept = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _Gone(Exception):
    """The client went away while sending its body."""


async def _chunks(receive: Callable) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _send_error(send: Callable, code: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
