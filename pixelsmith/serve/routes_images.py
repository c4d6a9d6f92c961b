"""Generation and interpolation: images drawn from seeds (OpenAI's images.generate shape)."""

import base64
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from pixelsmith.serve import generation, work
from pixelsmith.serve.schemas import (
    Error,
    GenerationRequest,
    GenerationResponse,
    InterpolationRequest,
    InterpolationResponse,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "a bad request, in one line"},
    413: {"model": Error, "description": "a body over its cap"},
    429: {"model": Error, "description": "the queue is full (Retry-After)"},
    503: {"model": Error, "description": "the request ran past the timeout (Retry-After)"},
}
RAW = {
    "description": "the images, or with Accept: image/* and one image its raw bytes",
    "content": {m: {} for m in generation.MEDIA.values()},
}


def wants_image(request: Request) -> bool:
    """Whether the client asked for raw image bytes (Accept: image/*)."""
    return request.headers.get("accept", "").startswith("image/")


def add_routes(app: FastAPI, svc: Any) -> None:
    """Register generation and interpolation on `app` for the service `svc`."""

    @app.post(
        "/v1/images/generations",
        response_model=GenerationResponse,
        response_model_exclude_none=True,
        responses={**ERRORS, 200: RAW},
        summary="images drawn from seeds",
    )
    async def generations(body: GenerationRequest, request: Request) -> Any:
        req = generation.plan_generation(body, svc.generators)
        served = svc.generators[req.model]
        items = await svc.queue.run(lambda: generation.generate(req, served, work.check, svc.stamp))
        if req.n == 1 and req.response == "b64_json" and wants_image(request):
            headers = {"X-Pixelsmith-Seed": str(items[0]["seed"])}
            data = base64.b64decode(items[0]["b64_json"])
            return Response(data, media_type=generation.MEDIA[req.fmt], headers=headers)
        m = served.model
        return GenerationResponse(
            created=int(time.time()),
            model=req.model,
            payload_sha256=m.manifest.get("payload_sha256"),
            backend=served.backend_name(req.options),
            options=m.sample_settings(m.sample_options(**req.options)),
            output_format=req.fmt,
            size=generation.size_text(m),
            data=items,
            notes=req.notes,
        )

    @app.post(
        "/v1/images/interpolations",
        response_model=InterpolationResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        summary="the path between two seeds' codes",
    )
    async def interpolations(body: InterpolationRequest) -> Any:
        name = generation.model_name(body.model, svc.generators)
        served = svc.generators[name]
        if body.label is not None:
            generation.check_labels(name, served.model, [body.label])
        notes: list[str] = []
        items = await svc.queue.run(
            lambda: generation.interpolate_seeds(body, served, work.check, svc.stamp, notes)
        )
        return InterpolationResponse(
            model=name,
            seeds=body.seeds,
            label=served.label_of(body.seeds[0], body.label),
            output_format=body.output_format,
            data=items,
            notes=notes,
        )
