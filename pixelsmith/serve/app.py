"""The HTTP service: FastAPI over the library's own functions, with no logic of its own.

First increment of the serving issue: `GET /healthz`, `GET /readyz`, `GET /v1/models`,
`POST /v1/images/generations` (the shape of the OpenAI images API: model, n, seed, size of the
answer, `response_format` b64_json, `output_format` png / webp / jpeg; `Accept: image/png` with
n = 1 answers the raw bytes) and `GET /metrics` (Prometheus text). Every bad request is a 4xx
with a one-line `{"error": {"message", "type"}}`; images carry no metadata; each answer echoes
the seed of every image so it can be remade bit for bit; with an API key every path but the
health checks needs `Authorization: Bearer KEY`. Edit endpoints, the queue and the web page are
the next increments.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations
# (Request, imported lazily inside create_app) as real objects.
import base64
import hmac
import io
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family

MAX_N = 16
MAX_SEED = 2**63 - 1
FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
MEDIA = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class Served:
    """A loaded model and what /v1/models says of it."""

    name: str
    model: Family
    source: str

    def card(self) -> dict[str, Any]:
        m = self.model
        scores = {}
        for s in (m.manifest.get("scores") or [])[-4:]:
            card = s.get("card", {})
            scores[card.get("metric", "?")] = {"value": s.get("value"), "card": card}
        return {
            "id": self.name,
            "object": "model",
            "family": m.name,
            "image_shape": list(m.image_shape),
            "classes": m.classes,
            "source": self.source,
            "payload_sha256": m.manifest.get("payload_sha256"),
            "options": m.sample_settings(),
            "scores": scores,
        }


@dataclass
class Metrics:
    """Counters and a latency histogram, rendered as Prometheus text."""

    requests: Counter = field(default_factory=Counter)
    buckets: Counter = field(default_factory=Counter)
    total_s: float = 0.0
    count: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        with self.lock:
            self.requests[endpoint, code] += 1
            self.count += 1
            self.total_s += seconds
            for b in LATENCY_BUCKETS:
                if seconds <= b:
                    self.buckets[b] += 1

    def text(self) -> str:
        lines = [
            "# TYPE pixelsmith_requests_total counter",
            *(
                f'pixelsmith_requests_total{{endpoint="{e}",code="{c}"}} {n}'
                for (e, c), n in sorted(self.requests.items())
            ),
            "# TYPE pixelsmith_request_seconds histogram",
            *(
                f'pixelsmith_request_seconds_bucket{{le="{b}"}} {self.buckets[b]}'
                for b in LATENCY_BUCKETS
            ),
            f'pixelsmith_request_seconds_bucket{{le="+Inf"}} {self.count}',
            f"pixelsmith_request_seconds_sum {self.total_s:.6f}",
            f"pixelsmith_request_seconds_count {self.count}",
            "# TYPE pixelsmith_in_flight gauge",
            f"pixelsmith_in_flight {self.in_flight}",
        ]
        return "\n".join(lines) + "\n"


def encode(image: torch.Tensor, fmt: str, quality: int = 90) -> bytes:
    """One (C, H, W) image in [0, 1] as file bytes, with no metadata at all."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    options = {"quality": quality} if fmt in ("jpeg", "webp") else {}
    im.save(buf, format=FORMATS[fmt], **options)
    return buf.getvalue()


def check_request(body: Any, models: dict[str, Served]) -> dict[str, Any]:
    """The generation request's fields, checked; UserError (a 400) on anything wrong."""
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    known = {"model", "n", "seed", "response_format", "output_format", "quality", "labels"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}")
    name = body.get("model") or (next(iter(models)) if len(models) == 1 else None)
    if name not in models:
        raise UserError(f"unknown model {name!r}; GET /v1/models lists {', '.join(models)}")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise UserError(f"n must be a whole number from 1 to {MAX_N}, got {n!r}")
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - MAX_N:
        raise UserError(f"seed must be a whole number from 0 to {MAX_SEED - MAX_N}, got {seed!r}")
    fmt = body.get("output_format", "png")
    if fmt not in FORMATS:
        raise UserError(f"output_format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    response = body.get("response_format", "b64_json")
    if response not in ("b64_json", "seed"):
        raise UserError(f"response_format must be b64_json or seed, got {response!r}")
    quality = body.get("quality", 90)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise UserError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    labels = body.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in labels
        ):
            raise UserError("labels must be a list of class numbers")
        models[name].model.check_labels(labels)
    return dict(
        model=name, n=n, seed=seed, fmt=fmt, response=response, quality=quality, labels=labels
    )


def generate(req: dict[str, Any], served: Served) -> list[dict[str, Any]]:
    """Each image of a checked request: its seed, and its bytes unless only seeds are asked.

    Image i is `sample(1, seed=seed + i)`: one image per seed, so any one can be remade alone.
    """
    out = []
    for i in range(req["n"]):
        s = req["seed"] + i
        item: dict[str, Any] = {"seed": s}
        if req["response"] == "b64_json":
            extra = {}
            if req["labels"]:
                extra["labels"] = [req["labels"][i % len(req["labels"])]]
            image = served.model.sample(1, seed=s, **extra)[0]
            item["b64_json"] = base64.b64encode(encode(image, req["fmt"], req["quality"])).decode()
        out.append(item)
    return out


OPEN_PATHS = ("/healthz", "/readyz")  # what a load balancer may ask without the key


def create_app(models: dict[str, Served], api_key: str | None = None) -> Any:
    """The FastAPI application serving `models` (name -> Served); with `api_key`, every path
    but /healthz and /readyz needs `Authorization: Bearer KEY` (else 401)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    except ImportError:
        raise UserError(
            "the service needs the serve extra: pip install 'pixelsmith[serve]'"
        ) from None
    if not models:
        raise UserError("give at least one model to serve")
    app = FastAPI(title="pixelsmith", version="0.1", docs_url="/docs")
    metrics = Metrics()
    ready = {"ok": False}

    def error(code: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return error(422, f"{'.'.join(map(str, first.get('loc', [])))}: {first.get('msg', '')}")

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        metrics.in_flight += 1
        try:
            given = request.headers.get("authorization", "")
            if (
                api_key
                and request.url.path not in OPEN_PATHS
                and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())
            ):
                response = error(401, "missing or wrong API key (Authorization: Bearer KEY)")
                response.headers["WWW-Authenticate"] = "Bearer"
            else:
                response = await call_next(request)
        except Exception:  # never a traceback to the client
            response = error(500, "internal error", "server_error")
        finally:
            metrics.in_flight -= 1
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - t0)
        return response

    static = Path(__file__).parent / "static"

    @app.get("/", include_in_schema=False)
    def page() -> Any:
        index = static / "index.html"
        if not index.exists():
            return error(404, "this build ships no web page")
        return HTMLResponse(index.read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        f = static / name
        if "/" in name or name.startswith(".") or f.suffix not in kinds or not f.is_file():
            return error(404, f"no asset {name!r}")
        return Response(f.read_bytes(), media_type=kinds[f.suffix])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        if not ready["ok"]:  # warm every model once: the first answer should not pay for it
            for s in models.values():
                s.model.sample(1, seed=0)
            ready["ok"] = True
        return {"status": "ready", "models": list(models)}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [s.card() for s in models.values()]}

    @app.get("/metrics")
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > 64 * 1024:
            return error(413, "the request body is over 64 KiB")
        import json

        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"the body is not JSON ({e.msg if hasattr(e, 'msg') else e})")
        try:
            req = check_request(body, models)
            items = generate(req, models[req["model"]])
        except UserError as e:
            return error(400, str(e))
        accept = request.headers.get("accept", "")
        if req["n"] == 1 and req["response"] == "b64_json" and accept.startswith("image/"):
            data = base64.b64decode(items[0]["b64_json"])
            headers = {"X-Pixelsmith-Seed": str(items[0]["seed"])}
            return Response(data, media_type=MEDIA[req["fmt"]], headers=headers)
        return {
            "created": int(time.time()),
            "model": req["model"],
            "payload_sha256": models[req["model"]].model.manifest.get("payload_sha256"),
            "output_format": req["fmt"],
            "data": items,
        }

    return app


def load_served(targets: list[str]) -> dict[str, Served]:
    """Models from run folders, checkpoints or zoo:NAME, named by their last path part."""
    from pixelsmith.generate.load import load_model

    out: dict[str, Served] = {}
    for t in targets:
        model = load_model(t)
        if not model.abilities.generates:
            raise UserError(f"{t} is a {model.name} model; this increment serves generators only")
        name = t[4:] if t.startswith("zoo:") else t.rstrip("/").split("/")[-1]
        if name in out:
            raise UserError(f"two models would both be called {name!r}")
        out[name] = Served(name, model, t)
    return out
