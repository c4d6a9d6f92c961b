"""The HTTP service: FastAPI over the library's own functions, with no logic of its own.

Paths (each documented with its typed bodies at /openapi.json and /docs): the web page at `/`
(files in serve/static, no CDN); `GET /healthz`, `GET /readyz` (models loaded and warmed);
`GET /v1/models`; `GET /v1/edits`; `POST /v1/images/generations` (OpenAI's images.generate);
`POST /v1/images/interpolations`; `POST /v1/images/edits` (OpenAI's images.edit, multipart, read
into memory only) and `POST /v1/faces/detections`; `POST /v1/images/provenance` (the service's
mark and an upload's content credentials); `GET /metrics` (Prometheus text). The routes live by
concern in routes_site.py, routes_images.py, routes_edits.py and routes_provenance.py.

Every bad request is a 4xx with a one-line `{"error": {"message", "type"}}` (serve/errors.py);
work runs on a bounded queue (429 when full, 503 past the timeout, both with Retry-After);
every image it returns carries an invisible watermark (the service's own key, made on the first
start) and a signed C2PA manifest (the local signer, made on the first start), and nothing else
(jobs.stamp; `GET /v1/models` shows the key's public id and the signer); each generation echoes
the seed of every image so it can be remade (bit for bit with the stamp off); with an API key
every path but the health checks and the page's own files needs `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pixelsmith.errors import UserError
from pixelsmith.jobs.stamp import Stamp, service_stamp
from pixelsmith.models.base import Family
from pixelsmith.serve import work
from pixelsmith.serve.generation import Served, load_served
from pixelsmith.serve.metrics import Metrics
from pixelsmith.version import __version__

__all__ = ["ServeConfig", "Served", "Service", "create_app", "load_served"]

LOG = logging.getLogger("pixelsmith.serve")
# python-multipart logs each malformed body to stderr; the client already gets the 400.
logging.getLogger("python_multipart").setLevel(logging.ERROR)
OPEN_PATHS = ("/healthz", "/readyz")  # what a load balancer may ask without the key
JSON_LIMIT = 256 * 1024  # a 32,000-character prompt in any script fits
FORM_PATHS = (
    "/v1/images/edits",
    "/v1/faces/detections",
    "/v1/images/provenance",
    "/v1/images/forensics",
)


@dataclass(frozen=True)
class ServeConfig:
    """The service's limits: the work queue, upload bytes and pixels."""

    workers: int = 1
    queue: int = 8
    timeout_s: float = 60.0
    max_upload: int = 20 * 2**20
    max_pixels: int = 12_000_000  # an upload's declared pixels (a 12 MP phone photo)
    # an edit's answer (x2 of 4 MP, x4 of 1 MP): ~200 MB as floats
    max_output_pixels: int = 16_000_000


@dataclass
class Service:
    """What the routes share: the models, the limits, the work queue and the counters."""

    models: dict[str, Served]
    cfg: ServeConfig
    queue: work.WorkQueue
    api_key: str | None = None
    stamp: Stamp = field(default_factory=Stamp)  # what every returned image carries
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    warming: threading.Lock = field(default_factory=threading.Lock)
    known_paths: set[str] = field(default_factory=set)

    @property
    def generators(self) -> dict[str, Served]:
        return {k: s for k, s in self.models.items() if s.model.abilities.generates}

    @property
    def translators(self) -> dict[str, Family]:
        return {k: s.model for k, s in self.models.items() if s.model.abilities.translates}

    def body_cap(self, path: str) -> int:
        """The most bytes a POST body to `path` may hold."""
        return self.cfg.max_upload if path in FORM_PATHS else JSON_LIMIT


def _guard(svc: Service) -> Any:
    """The outermost middleware: the API key, the request counters, and a one-line 500 for any
    error a route did not expect (its traceback goes to the operator's log)."""
    from pixelsmith.serve.errors import error

    async def guard(request: Any, call_next: Any) -> Any:
        t0 = time.perf_counter()
        svc.metrics.in_flight += 1
        path = request.url.path
        try:
            given = request.headers.get("authorization", "")
            page = request.method == "GET" and (path == "/" or path.startswith("/static/"))
            if (
                svc.api_key
                and path not in OPEN_PATHS
                and not page  # the page holds no data: it asks for the key on its first 401
                and not hmac.compare_digest(given.encode(), f"Bearer {svc.api_key}".encode())
            ):
                response = error(401, "missing or wrong API key (Authorization: Bearer KEY)")
                response.headers["WWW-Authenticate"] = "Bearer"
            else:
                response = await call_next(request)
        except Exception:
            LOG.exception("error answering %s %s", request.method, path)
            response = error(500, "internal error", "server_error")
        finally:
            svc.metrics.in_flight -= 1
        # unknown paths must not grow the label set
        known = path in svc.known_paths
        label = path if known else "/static" if path.startswith("/static/") else "other"
        svc.metrics.observe(label, response.status_code, time.perf_counter() - t0)
        return response

    return guard


def create_app(
    models: dict[str, Served],
    api_key: str | None = None,
    config: ServeConfig | None = None,
    stamp: Stamp | None = None,
) -> Any:
    """The FastAPI application serving `models` (name -> Served: generators and translators);
    with `api_key`, every path but /healthz, /readyz and the page (GET /, /static/*) needs
    `Authorization: Bearer KEY`. `stamp`: what every image it returns carries (default: the
    service's own watermark key and the local signer, each made on the first start, see
    `jobs.stamp.service_stamp`; `Stamp()` for neither)."""
    try:
        from fastapi import FastAPI
    except ImportError:
        raise UserError(
            "the service needs the serve extra: pip install 'pixelsmith[serve]'"
        ) from None
    from pixelsmith.faces.detect import default_detector, fallback_note
    from pixelsmith.serve import (
        errors,
        routes_edits,
        routes_images,
        routes_provenance,
        routes_site,
    )
    from pixelsmith.serve.uploads import BodyCap

    if not models:
        raise UserError("give at least one model to serve")
    cfg = config or ServeConfig()
    if stamp is None:
        stamp = service_stamp(log=lambda line: LOG.warning("%s", line))
    svc = Service(
        models, cfg, work.WorkQueue(cfg.workers, cfg.queue, cfg.timeout_s), api_key, stamp
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        with contextlib.suppress(UserError):
            if note := fallback_note(default_detector()):
                LOG.warning("%s", note)
        yield
        svc.queue.close()

    app = FastAPI(
        title="pixelsmith",
        version=__version__,
        description=__doc__.split("\n\n")[0],
        docs_url="/docs",
        lifespan=lifespan,
    )
    errors.install(app)
    json_paths = {"/v1/images/generations", "/v1/images/interpolations"}
    app.add_middleware(BodyCap, cap=svc.body_cap, json_paths=json_paths)
    app.middleware("http")(_guard(svc))
    for routes in (routes_site, routes_images, routes_edits, routes_provenance):
        routes.add_routes(app, svc)
    svc.known_paths.update(getattr(r, "path", "") for r in app.routes)
    app.openapi = _without_422(app)
    return app


def _without_422(app: Any) -> Any:
    """app.openapi without FastAPI's 422 answers: a body that fails its model is a 400 here."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            for ops in spec.get("paths", {}).values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi
