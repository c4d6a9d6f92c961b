"""One shape for every error the service answers, and the handlers that make it.

Every 4xx and 5xx is `{"error": {"message": ONE LINE, "type": ...}}`: a UserError raised anywhere
below a route is a 400 (413 for a body over its cap, 415 for the wrong media type), an Overload
from the work queue a 429 or 503 with Retry-After, a body that fails its typed model a 400 naming
the field and what it must be, an unknown path or method a 404 or 405.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pixelsmith.errors import UserError
from pixelsmith.serve import work
from pixelsmith.serve.schemas import BODIES
from pixelsmith.serve.uploads import TooLarge, WrongType

_NUMBERS = {2: "two", 3: "three"}
# FastAPI's answer to a JSON body that json.loads cannot take (too deep, an integer too long).
_UNPARSED = "There was an error parsing the body"


def error(code: int, message: str, kind: str = "invalid_request_error", retry: int | None = None):
    """The JSON error response."""
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": str(retry)} if retry is not None else None
    return JSONResponse(
        {"error": {"message": message, "type": kind}}, status_code=code, headers=headers
    )


def status(exc: UserError) -> int:
    """The status a user error answers."""
    return 413 if isinstance(exc, TooLarge) else 415 if isinstance(exc, WrongType) else 400


def _must(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """What a value of a JSON schema must be, in words."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if "anyOf" in schema:
        parts = [_must(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(p for p in parts if p)
    if "enum" in schema or "const" in schema:
        return "one of " + ", ".join(map(str, schema.get("enum", [schema.get("const")])))
    kind = schema.get("type")
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        text = "a whole number"
        if lo is not None and hi is not None:
            return f"{text} from {lo} to {hi}"
        return text + (f" of at least {lo}" if lo is not None else "")
    if kind == "array":
        n, m = schema.get("minItems"), schema.get("maxItems")
        items = _must(schema.get("items", {}), defs).removeprefix("a ")
        count = _NUMBERS.get(n, str(n)) + " " if n is not None and n == m else ""
        return f"a list of {count}{items.replace('number', 'numbers')}"
    return {"string": "text", "object": "an object", "number": "a number"}.get(kind, "valid")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_message(errors: list[dict[str, Any]], model: type[BaseModel] | None) -> str:
    """One line for the first error of a body that failed its typed model."""
    e = errors[0]
    loc = [x for x in e.get("loc", ()) if x != "body"]
    kind = e.get("type", "")
    if kind == "json_invalid":
        return f"the body is not JSON this service reads ({e.get('ctx', {}).get('error', '')})"
    if not loc or not isinstance(loc[0], str):
        return "the request body must be a JSON object"
    name = loc[0]
    if kind == "extra_forbidden":
        fields = ", ".join(sorted(model.model_fields)) if model else "at /docs"
        return f"unknown field {name!r}; the fields are {fields}"
    if kind == "value_error":
        return str(e.get("msg", "")).removeprefix("Value error, ")
    must = "valid"
    if model is not None:
        schema = model.model_json_schema()
        must = _must(schema.get("properties", {}).get(name, {}), schema.get("$defs", {}))
    return f"{name} must be {must}, got {_shown(e.get('input'))}"


def install(app: Any) -> None:
    """Answer user errors, overload, failed bodies and unknown paths in the error shape."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(UserError)
    async def _user(_request: Request, exc: UserError) -> Any:
        return error(status(exc), str(exc))

    @app.exception_handler(work.Overload)
    async def _overload(_request: Request, exc: work.Overload) -> Any:
        code, kind = (429, "rate_limit_error") if isinstance(exc, work.Full) else (503, "timeout")
        return error(code, str(exc), kind, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        return error(400, validation_message(list(exc.errors()), BODIES.get(request.url.path)))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Any:
        text = {404: f"no such path {request.url.path!r}", 405: "method not allowed here"}
        message = text.get(exc.status_code, str(exc.detail))
        if exc.status_code == 400 and exc.detail == _UNPARSED:
            message = (
                "the body is not JSON this service reads (nested too deep, or a number too long)"
            )
        response = error(exc.status_code, message)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response
