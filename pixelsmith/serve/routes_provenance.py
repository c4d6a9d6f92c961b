"""Is an uploaded image one of this service's? Its mark read with the service's key, and its
content credentials validated (`jobs.stamp.Stamp.inspect`). And, for any image: was it
generated, which regions were edited (`jobs.forensics.Examiner`)."""

import base64
import io
from typing import Any

from fastapi import FastAPI, Request

from pixelsmith.errors import UserError
from pixelsmith.jobs.forensics import Examiner, overlay
from pixelsmith.serve import edits
from pixelsmith.serve.routes_edits import BINARY, image_part, multipart_form, read_parts
from pixelsmith.serve.routes_images import ERRORS
from pixelsmith.serve.schemas import ForensicsResponse, ProvenanceResponse


def _png_b64(x: Any) -> str:
    from PIL import Image

    arr = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def add_routes(app: FastAPI, svc: Any) -> None:
    """Register POST /v1/images/provenance and /v1/images/forensics for the service `svc`."""
    examiner = Examiner()

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

    @app.post(
        "/v1/images/forensics",
        response_model=ForensicsResponse,
        responses={**ERRORS, 415: ERRORS[400]},
        openapi_extra=multipart_form(
            {
                "image": {**BINARY, "description": "the image to examine"},
                "map": {"type": "boolean", "default": False, "description": "return the map"},
            },
            ["image"],
        ),
        summary="was an uploaded image generated, which regions of a photo were edited",
    )
    async def forensics(request: Request) -> Any:
        parts = await read_parts(request)
        upload = image_part(parts)
        want = parts["map"].text().strip().lower() if "map" in parts else "false"
        if want not in ("true", "false", "1", "0"):
            raise UserError(f"the form field map must be true or false, not {want!r}")

        def run() -> Any:
            photo = edits.read_upload(upload.data, "upload", svc.cfg.max_pixels)
            h, w = photo.size
            Examiner.check_size(w, h, "the upload")
            row, prob = examiner.examine(photo)
            model = row.pop("detector", None) or row.pop("localiser")
            row.pop("prepared", None)
            if prob is not None and want in ("true", "1"):
                row["map_png_b64"] = _png_b64(overlay(photo.colour.expand(3, -1, -1), prob))
            return ForensicsResponse(width=w, height=h, model=model, **row)

        return await svc.queue.run(run)
