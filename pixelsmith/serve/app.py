"""The HTTP service: FastAPI over the library's own functions, with no logic of its own.

Paths: the web page at `/` (files in serve/static, no CDN); `GET /healthz`, `GET /readyz`
(models loaded and warmed); `GET /v1/models`; `GET /v1/edits`; `POST /v1/images/generations`
(the OpenAI images shape: model, n, seed, `response_format` b64_json or seed, `output_format`
png / webp / jpeg; `Accept: image/*` with n = 1 answers the raw bytes); `POST
/v1/images/interpolations`; `POST /v1/images/edits` and `POST /v1/faces/detections` (multipart
uploads, read into memory only); `GET /metrics` (Prometheus text).

Every bad request is a 4xx with a one-line `{"error": {"message", "type"}}`; work runs on a
bounded queue (429 when full, 503 past the timeout, both with Retry-After); images carry no
metadata; each generation echoes the seed of every image so it can be remade bit for bit; with
an API key every path but the health checks and the page's own files needs
`Authorization: Bearer KEY`.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations
# (Request, imported lazily inside create_app) as real objects.
import base64
import contextlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelsmith.edit.photo import encode_photo, read_photo_bytes
from pixelsmith.errors import UserError
from pixelsmith.imageio import ImageReadError
from pixelsmith.serve import edits as _edits
from pixelsmith.serve import work
from pixelsmith.serve.generation import (
    FORMATS,
    MAX_N,
    MEDIA,
    Served,
    check_interpolation,
    check_request,
    generate,
    interpolate_seeds,
    load_served,
)
from pixelsmith.serve.metrics import Metrics, resident_bytes
from pixelsmith.serve.uploads import Part, TooLarge, WrongType, parse_form, read_body

__all__ = ["MAX_N", "Served", "ServeConfig", "create_app", "load_served"]

LOG = logging.getLogger("pixelsmith.serve")
# python-multipart logs each malformed body to stderr; the client already gets the 400.
logging.getLogger("python_multipart").setLevel(logging.ERROR)
OPEN_PATHS = ("/healthz", "/readyz")  # what a load balancer may ask without the key
JSON_LIMIT = 64 * 1024
STATIC = Path(__file__).parent / "static"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class ServeConfig:
    """The service's limits: the work queue, upload bytes and pixels."""

    workers: int = 1
    queue: int = 8
    timeout_s: float = 60.0
    max_upload: int = 20 * 2**20
    max_pixels: int = 12_000_000  # an upload's declared pixels (a 12 MP phone photo)
    max_output_pixels: int = (
        16_000_000  # an edit's answer (x2 of 4 MP, x4 of 1 MP): ~200 MB as floats
    )


def _status(exc: Exception) -> int:
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, WrongType):
        return 415
    return 400


def _fields(parts: dict[str, Part], files: tuple[str, ...]) -> dict[str, str]:
    return {k: p.text() for k, p in parts.items() if k not in files}


def create_app(
    models: dict[str, Served], api_key: str | None = None, config: ServeConfig | None = None
) -> Any:
    """The FastAPI application serving `models` (name -> Served: generators and translators);
    with `api_key`, every path but /healthz, /readyz and the page (GET /, /static/*) needs
    `Authorization: Bearer KEY`."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise UserError(
            "the service needs the serve extra: pip install 'pixelsmith[serve]'"
        ) from None
    if not models:
        raise UserError("give at least one model to serve")
    cfg = config or ServeConfig()
    generators = {k: s for k, s in models.items() if s.model.abilities.generates}
    translators = {k: s.model for k, s in models.items() if s.model.abilities.translates}
    offered = _edits.operations(translators)
    queue = work.WorkQueue(cfg.workers, cfg.queue, cfg.timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        queue.close()

    app = FastAPI(title="pixelsmith", version="0.1", docs_url="/docs", lifespan=lifespan)
    metrics = Metrics()
    ready = {"ok": False}
    warming = threading.Lock()
    known_paths: set[str] = set()  # filled with the routes' paths below

    def error(
        code: int, message: str, kind: str = "invalid_request_error", retry: int | None = None
    ) -> JSONResponse:
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse(
            {"error": {"message": message, "type": kind}}, status_code=code, headers=headers
        )

    def overload(e: work.Overload) -> JSONResponse:
        code, kind = (429, "rate_limit_error") if isinstance(e, work.Full) else (503, "timeout")
        return error(code, str(e), kind, e.retry_after)

    async def json_body(request: Request) -> Any:
        raw = await read_body(request.stream(), JSON_LIMIT, request.headers.get("content-length"))
        try:
            return json.loads(raw or b"{}")
        except (ValueError, RecursionError) as e:  # also too deep, or an integer too long
            detail = getattr(e, "msg", None) or str(e).split(";")[0][:80] or type(e).__name__
            raise UserError(f"the body is not JSON this service reads ({detail})") from None

    async def form_body(request: Request) -> dict[str, Part]:
        raw = await read_body(
            request.stream(), cfg.max_upload, request.headers.get("content-length")
        )
        return parse_form(raw, request.headers.get("content-type", ""))

    def image_part(parts: dict[str, Part], name: str = "image") -> Part:
        part = parts.get(name)
        if part is None or not part.data:
            raise UserError(f"the form needs an `{name}` file part holding an image")
        return part

    def answer_image(request: Request, data: bytes, fmt: str, body: dict[str, Any]) -> Any:
        if request.headers.get("accept", "").startswith("image/"):
            return Response(data, media_type=MEDIA[fmt])
        return {
            **body,
            "output_format": fmt,
            "data": [{"b64_json": base64.b64encode(data).decode()}],
        }

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown paths and methods answer in the same error shape as everything else."""
        text = {404: f"no such path {request.url.path!r}", 405: "method not allowed here"}
        response = error(exc.status_code, text.get(exc.status_code, str(exc.detail)))
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        metrics.in_flight += 1
        try:
            given = request.headers.get("authorization", "")
            path = request.url.path
            page = request.method == "GET" and (path == "/" or path.startswith("/static/"))
            if (
                api_key
                and path not in OPEN_PATHS
                and not page  # the page holds no data: it asks for the key on its first 401
                and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())
            ):
                response = error(401, "missing or wrong API key (Authorization: Bearer KEY)")
                response.headers["WWW-Authenticate"] = "Bearer"
            else:
                response = await call_next(request)
        except Exception:  # never a traceback to the client; the operator's log has it
            LOG.exception("error answering %s %s", request.method, request.url.path)
            response = error(500, "internal error", "server_error")
        finally:
            metrics.in_flight -= 1
        # unknown paths must not grow the label set
        label = (
            path if path in known_paths else "/static" if path.startswith("/static/") else "other"
        )
        metrics.observe(label, response.status_code, time.perf_counter() - t0)
        return response

    @app.get("/", include_in_schema=False)
    def page() -> Any:
        index = STATIC / "index.html"
        if not index.exists():
            return error(404, "this build ships no web page")
        return HTMLResponse(index.read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        f = STATIC / name
        if "/" in name or name.startswith(".") or f.suffix not in ASSET_TYPES or not f.is_file():
            return error(404, f"no asset {name!r}")
        return Response(f.read_bytes(), media_type=ASSET_TYPES[f.suffix])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        with warming:  # warm every generator once, on its backend: the first answer should not pay
            if not ready["ok"]:
                for s in generators.values():
                    s.image(0)
                ready["ok"] = True
        return {"status": "ready", "models": list(models)}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [s.card() for s in models.values()]}

    @app.get("/v1/edits")
    def list_edits() -> dict[str, Any]:
        return {"object": "list", "data": [op.card() for op in offered.values()]}

    @app.get("/metrics")
    def prometheus() -> PlainTextResponse:
        gauges = {
            "queue_depth": queue.waiting,
            "queue_running": queue.running,
            "queue_refused_total": queue.refused,
            "queue_timed_out_total": queue.timed_out,
            "resident_memory_bytes": resident_bytes(),
        }
        return PlainTextResponse(metrics.text(gauges), media_type="text/plain; version=0.0.4")

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Any:
        try:
            req = check_request(await json_body(request), generators)
            items = await queue.run(lambda: generate(req, generators[req["model"]], work.check))
        except work.Overload as e:
            return overload(e)
        except UserError as e:
            return error(_status(e), str(e))
        accept = request.headers.get("accept", "")
        if req["n"] == 1 and req["response"] == "b64_json" and accept.startswith("image/"):
            data = base64.b64decode(items[0]["b64_json"])
            headers = {"X-Pixelsmith-Seed": str(items[0]["seed"])}
            return Response(data, media_type=MEDIA[req["fmt"]], headers=headers)
        return {
            "created": int(time.time()),
            "model": req["model"],
            "payload_sha256": generators[req["model"]].model.manifest.get("payload_sha256"),
            "backend": generators[req["model"]].backend_name(req["options"]),
            "options": generators[req["model"]].model.sample_settings(
                generators[req["model"]].model.sample_options(**req["options"])
            ),
            "output_format": req["fmt"],
            "data": items,
        }

    @app.post("/v1/images/interpolations")
    async def interpolations(request: Request) -> Any:
        try:
            req = check_interpolation(await json_body(request), generators)
            items = await queue.run(
                lambda: interpolate_seeds(req, generators[req["model"]], work.check)
            )
        except work.Overload as e:
            return overload(e)
        except UserError as e:
            return error(_status(e), str(e))
        served = generators[req["model"]]
        label = served.label_of(req["seeds"][0], req["label"])
        return {
            "model": req["model"],
            "seeds": req["seeds"],
            **({} if label is None else {"label": label}),
            "output_format": req["fmt"],
            "data": items,
        }

    def read_upload(part: Part, what: str) -> Any:
        try:
            return read_photo_bytes(part.data, what, cfg.max_pixels)
        except ImageReadError as e:  # the reader's fix names a CLI setting; say the service's
            raise UserError(f"the {what} {e.reason}") from None

    @app.post("/v1/images/edits")
    async def edit(request: Request) -> Any:
        try:
            parts = await form_body(request)
            fields = _fields(parts, ("image", "mask"))
            operation = fields.pop("operation", None)
            fmt = fields.pop("output_format", "png")
            if fmt not in FORMATS:
                raise UserError(f"output_format must be one of {', '.join(FORMATS)}, got {fmt!r}")
            quality = fields.pop("quality", "90")
            if not re.fullmatch("[0-9]{1,3}", quality) or not 1 <= int(quality) <= 100:
                raise UserError(f"quality must be a whole number from 1 to 100, got {quality!r}")
            options = _edits.check_edit(operation, fields, offered)
            unknown = sorted(set(fields) - set(offered[operation].options))
            if unknown:
                raise UserError(f"{operation} takes no option {unknown[0]!r}")
            upload = image_part(parts)
            mask_part = parts.get("mask")

            def run() -> tuple[bytes, tuple[int, int]]:  # decoding too runs off the event loop
                photo = read_upload(upload, "upload")
                mask = read_upload(mask_part, "mask") if mask_part and mask_part.data else None
                h, w = photo.size
                out_px = _edits.output_pixels(operation, options, h, w)
                if out_px > cfg.max_output_pixels:
                    raise UserError(
                        f"{operation} would answer {out_px:,} pixels, over the service's limit "
                        f"of {cfg.max_output_pixels:,}; send a smaller image"
                    )
                if photo.alpha is not None and fmt == "jpeg" and operation != "translate":
                    raise UserError("the image has alpha, which JPEG cannot hold; ask for png")
                out = _edits.apply_edit(
                    operation, options, photo, mask, translators, work.check, upload.data
                )
                return encode_photo(out, Path(f"result.{fmt}"), int(quality)), out.size

            data, (oh, ow) = await queue.run(run)
        except work.Overload as e:
            return overload(e)
        except UserError as e:
            return error(_status(e), str(e))
        body = {"operation": operation, "options": options, "width": ow, "height": oh}
        return answer_image(request, data, fmt, body)

    @app.post("/v1/faces/detections")
    async def detections(request: Request) -> Any:
        from pixelsmith.faces.detect import detect_faces

        try:
            upload = image_part(await form_body(request))

            def run() -> tuple[Any, list[Any]]:
                photo = read_upload(upload, "upload")
                return photo.size, detect_faces(photo.colour)

            (h, w), faces = await queue.run(run)
        except work.Overload as e:
            return overload(e)
        except UserError as e:
            return error(_status(e), str(e))
        return {"width": w, "height": h, "faces": [f.to_dict() for f in faces]}

    known_paths.update(getattr(r, "path", "") for r in app.routes)
    return app
