"""Edits of uploaded images (OpenAI's images.edit, multipart) and face detection.

Uploads are read into memory and parsed there (serve/uploads.py: Starlette's own form parser
spools large parts to disk), so these routes declare their multipart bodies for OpenAPI
themselves, from the same declarations that check them.
"""

import base64
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from pixelsmith.errors import UserError
from pixelsmith.faces.detect import check_detector, default_detector, detect_faces, fallback_note
from pixelsmith.jobs import Operation, operations
from pixelsmith.jobs.faces import DETECTING
from pixelsmith.jobs.options import parse_all
from pixelsmith.serve import edits, generation, work
from pixelsmith.serve.routes_images import ERRORS, RAW, wants_image
from pixelsmith.serve.schemas import (
    DetectionResponse,
    EditFields,
    EditResponse,
    ImageItem,
    Listing,
)
from pixelsmith.serve.uploads import Part, parse_form

FILES = ("image", "image[]", "mask")
BINARY = {"type": "string", "format": "binary"}


def _options_schema(offered: list[Operation]) -> dict[str, Any]:
    """Every offered operation's options as form fields, from the declarations: an option that
    means the same in every operation keeps its schema; one whose values differ by operation
    (inpaint's and anonymise's `method`) is text, each operation's values described."""
    seen: dict[str, list[tuple[str, Any]]] = {}
    for op in offered:
        for o in op.remote_options():
            seen.setdefault(o.name, []).append((op.name, o))
    out = {}
    for name, uses in seen.items():
        schemas = [{k: v for k, v in o.schema().items() if k != "description"} for _, o in uses]
        said = "; ".join(f"{op}: {o.help}" for op, o in uses)
        if all(sc == schemas[0] for sc in schemas):
            out[name] = {**uses[0][1].schema(), "description": said}
        else:
            values = "; ".join(f"{op}: {', '.join(map(str, o.card().get('choices') or []))}"
                               for op, o in uses)  # fmt: skip
            out[name] = {"type": "string", "description": f"{said} ({values})"}
    return out


def multipart_form(properties: dict[str, Any], required: list[str], **more: Any) -> dict[str, Any]:
    """The OpenAPI request body of a multipart form with these fields."""
    schema = {"type": "object", "properties": properties, "required": required, **more}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def _edit_form(offered: list[Operation]) -> dict[str, Any]:
    fields = EditFields.model_json_schema()["properties"]
    fields["operation"]["description"] = "the edit (GET /v1/edits), or give it as model"
    fields["model"]["description"] = (
        "OpenAI's name for the edit: an operation, a variant such as sr-x4, or a served CycleGAN"
    )
    image = {**BINARY, "description": "the image to edit"}
    mask = {**BINARY, "description": "inpaint: white, or transparent (OpenAI's rule), = to fill"}
    properties = {"image": image, "mask": mask, **fields, **_options_schema(offered)}
    named = [{"required": ["operation"]}, {"required": ["model"]}]
    return multipart_form(properties, ["image"], anyOf=named)


def _detection_form() -> dict[str, Any]:
    properties = {o.name: {**o.schema(), "description": o.help} for o in DETECTING}
    return multipart_form(
        {"image": {**BINARY, "description": "the photo"}, **properties}, ["image"]
    )


def image_part(parts: dict[str, Part]) -> Part:
    """The form's one image part (`image`, or OpenAI's `image[]`)."""
    if "image" in parts and "image[]" in parts:
        raise UserError("the form has two images (image and image[]); send one")
    part = parts.get("image") or parts.get("image[]")
    if part is None or not part.data:
        raise UserError("the form needs an `image` file part holding an image")
    return part


async def read_parts(request: Request) -> dict[str, Part]:
    """A multipart request's parts by name, parsed in memory."""
    return parse_form(await request.body(), request.headers.get("content-type", ""))


def add_routes(app: FastAPI, svc: Any) -> None:
    """Register the edit and face routes on `app` for the service `svc`."""

    @app.get("/v1/edits", response_model=Listing, summary="the edits on offer, with their options")
    def list_edits() -> Listing:
        return Listing(data=edits.cards(svc.translators))

    offered = [operations()[card["id"]] for card in edits.cards(svc.translators)]

    @app.post(
        "/v1/images/edits",
        response_model=EditResponse,
        response_model_exclude_none=True,
        responses={**ERRORS, 415: ERRORS[400], 200: RAW},
        openapi_extra=_edit_form(offered),
        summary="an uploaded image edited",
    )
    async def edit(request: Request) -> Any:
        parts = await read_parts(request)
        form = {k: p.text() for k, p in parts.items() if k not in FILES}
        upload, mask = image_part(parts), parts.get("mask")
        mask_data = mask.data if mask is not None and mask.data else None
        job = edits.plan_edit(form, svc.translators, set(svc.generators), mask_data is not None)
        cfg = svc.cfg
        done = await svc.queue.run(
            lambda: edits.run_edit(
                job,
                upload.data,
                mask_data,
                cfg.max_pixels,
                cfg.max_output_pixels,
                work.check,
                svc.stamp,
                upload.filename,
            )
        )
        if wants_image(request):
            return Response(done.data, media_type=generation.MEDIA[job.fmt])
        oh, ow = done.size
        image = ImageItem(b64_json=base64.b64encode(done.data).decode(), watermark=done.watermark)
        return EditResponse(
            created=int(time.time()),
            operation=job.op.name,
            options=edits.remote_options(job),
            width=ow,
            height=oh,
            size=f"{ow}x{oh}",
            output_format=job.fmt,
            data=[image],
            notes=job.notes,
            report=done.report,
        )

    @app.post(
        "/v1/faces/detections",
        response_model=DetectionResponse,
        responses={**ERRORS, 415: ERRORS[400]},
        openapi_extra=_detection_form(),
        summary="the faces of an uploaded image",
    )
    async def detections(request: Request) -> Any:
        parts = await read_parts(request)
        upload = image_part(parts)
        form = {k: p.text() for k, p in parts.items() if k not in FILES and p.text() != ""}
        options = parse_all(DETECTING, form, "face detection")
        name = default_detector() if options["detector"] == "auto" else options["detector"]
        check_detector(name)

        def run() -> tuple[Any, list[Any]]:
            photo = edits.read_upload(upload.data, "upload", svc.cfg.max_pixels)
            faces = detect_faces(photo.colour, name, options["min_size"], options["threshold"])
            return photo.size, faces

        (h, w), faces = await svc.queue.run(run)
        note = fallback_note(name) if options["detector"] == "auto" else None
        return DetectionResponse(
            width=w,
            height=h,
            detector=name,
            faces=[f.to_dict() for f in faces],
            notes=[note] if note else [],
        )
