"""Is an uploaded image one of this service's? Its mark read with the service's key, and its
content credentials validated (`jobs.stamp.Stamp.inspect`)."""

from typing import Any

from fastapi import FastAPI, Request

from pixelsmith.serve.routes_edits import BINARY, image_part, multipart_form, read_parts
from pixelsmith.serve.routes_images import ERRORS
from pixelsmith.serve.schemas import ProvenanceResponse


def add_routes(app: FastAPI, svc: Any) -> None:
    """Register POST /v1/images/provenance on `app` for the service `svc`."""

    @app.post(
        "/v1/images/provenance",
        response_model=ProvenanceResponse,
        responses={**ERRORS, 415: ERRORS[400]},
        openapi_extra=multipart_form(
            {"image": {**BINARY, "description": "the image to trace"}}, ["image"]
        ),
        summary="the service's watermark and the content credentials of an uploaded image",
    )
    async def provenance(request: Request) -> Any:
        upload = image_part(await read_parts(request))
        found = await svc.queue.run(
            lambda: svc.stamp.inspect(upload.data, "upload", svc.cfg.max_pixels)
        )
        return ProvenanceResponse(**found)
