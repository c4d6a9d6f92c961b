"""The page, its files, the health checks, the model list and the metrics."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from pixelsmith.serve.errors import error
from pixelsmith.serve.metrics import resident_bytes
from pixelsmith.serve.schemas import ModelListing

STATIC = Path(__file__).parent / "static"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def add_routes(app: FastAPI, svc: Any) -> None:
    """Register the site's routes on `app` for the service `svc`."""

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

    @app.get("/healthz", summary="the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="every model is loaded and has drawn once on its backend, and the watermark "
        "has marked once",
    )
    def readyz() -> dict[str, Any]:
        with svc.warming:  # the first answer should not pay for the warm-up
            if not svc.ready:
                for s in svc.generators.values():
                    s.image(0)
                svc.stamp.warm()
                svc.ready = True
        return {"status": "ready", "models": list(svc.models)}

    @app.get("/v1/models", response_model=ModelListing, summary="the served models")
    def models() -> ModelListing:
        return ModelListing(
            data=[s.card() for s in svc.models.values()], provenance=svc.stamp.describe()
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def prometheus() -> PlainTextResponse:
        q = svc.queue
        gauges = {
            "queue_depth": q.waiting,
            "queue_running": q.running,
            "queue_refused_total": q.refused,
            "queue_timed_out_total": q.timed_out,
            "resident_memory_bytes": resident_bytes(),
        }
        text = svc.metrics.text(gauges)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
