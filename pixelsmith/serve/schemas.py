"""The service's request and response bodies, typed: what /openapi.json documents and /docs sends.

Requests refuse fields they do not declare. The generation and edit bodies take the fields of
OpenAI's images API that mean something here (`model`, `prompt`, `n`, `size`,
`response_format`, `output_format`, `quality`, `user`), so the official `openai` client works
against the service, beside pixelsmith's own (`seed`, `labels`, `options`, `operation`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

MAX_N = 16
MAX_SEED = 2**63 - 1
FORMATS = ("png", "webp", "jpeg")
# OpenAI's quality words: they choose among its models' qualities, which pixelsmith's models
# have one of; accepted and said to be ignored. A whole number is the JPEG/WebP quality.
QUALITY_WORDS = ("auto", "low", "medium", "high", "standard", "hd", "xhigh", "max")
URL_REFUSED = (
    "response_format url is not offered: this service keeps no files to link to; "
    "ask for b64_json (or seed)"
)

Quality = Annotated[StrictInt, Field(ge=1, le=100)] | Literal[QUALITY_WORDS]  # type: ignore[valid-type]


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


def _response_format(value: str) -> str:
    if value == "url":
        raise ValueError(URL_REFUSED)
    return value


class GenerationRequest(Body):
    """POST /v1/images/generations: images drawn from seeds (OpenAI's images.generate shape)."""

    model: str | None = Field(
        None, description="a served generator (GET /v1/models); default: the only one"
    )
    prompt: str | None = Field(
        None,
        max_length=32000,
        description="a class name of a conditional generator picks that class; otherwise "
        "ignored (the answer says so)",
    )
    n: StrictInt = Field(1, ge=1, le=MAX_N, description="how many images")
    seed: StrictInt = Field(
        0, ge=0, le=MAX_SEED - MAX_N, description="image i is drawn from seed + i"
    )
    size: str | None = Field(None, description="the model's own size WxH (or auto)")
    response_format: Literal["b64_json", "seed", "url"] = Field(
        "b64_json", description="b64_json: the images; seed: only each image's seed"
    )
    output_format: Literal[FORMATS] = "png"  # type: ignore[valid-type]
    quality: Quality = Field(90, description="JPEG/WebP quality 1-100 (OpenAI's words: ignored)")
    labels: list[StrictInt] | None = Field(
        None, description="a conditional model's class of each image, cycled to n"
    )
    options: dict[str, Any] | None = Field(
        None, description='the model\'s sampling options (GET /v1/models), e.g. {"truncation": 0.7}'
    )
    user: str | None = Field(None, description="OpenAI's end-user id; not used")

    _url = field_validator("response_format")(_response_format)


class InterpolationRequest(Body):
    """POST /v1/images/interpolations: the path between two seeds' codes."""

    model: str | None = None
    seeds: Annotated[
        list[Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]], Field(min_length=2, max_length=2)
    ]
    steps: StrictInt = Field(8, ge=2, le=MAX_N, description="images on the path, ends included")
    label: StrictInt | None = Field(None, ge=0, description="the class (default: the first seed's)")
    output_format: Literal[FORMATS] = "png"  # type: ignore[valid-type]
    quality: StrictInt = Field(90, ge=1, le=100)


class EditFields(BaseModel):
    """The fields of POST /v1/images/edits besides the files and the operation's options; they
    arrive as text, so numbers are read from it."""

    model_config = ConfigDict(extra="ignore")

    operation: str | None = None
    model: str | None = None
    prompt: str | None = Field(None, max_length=32000)
    n: int = Field(1, description="1: an edit makes the same image every time")
    size: str | None = None
    response_format: str = Field("b64_json", description="b64_json (url is not offered)")
    output_format: Literal[FORMATS] = "png"  # type: ignore[valid-type]
    quality: Annotated[int, Field(ge=1, le=100)] | Literal[QUALITY_WORDS] = 90  # type: ignore[valid-type]
    user: str | None = None

    @field_validator("response_format")
    @classmethod
    def _b64(cls, value: str) -> str:
        if value != "b64_json":
            _response_format(value)
            raise ValueError(f"response_format must be b64_json, got {value!r}")
        return value

    @field_validator("n")
    @classmethod
    def _one(cls, n: int) -> int:
        if n != 1:
            raise ValueError(
                f"n must be 1 for an edit (it makes the same image every time), got {n}"
            )
        return n


EDIT_FIELDS = tuple(EditFields.model_fields)


class Error(BaseModel):
    """What every 4xx and 5xx answers."""

    class Detail(BaseModel):
        message: str
        type: str

    error: Detail


class ImageItem(BaseModel):
    """One image of an answer."""

    b64_json: str | None = None
    seed: int | None = Field(
        None,
        description="remakes this image alone (byte for byte when the service neither marks "
        "nor signs; else to within the mark)",
    )
    label: int | None = Field(None, description="its class, for a conditional model")
    t: float | None = Field(None, description="its place on an interpolation path, 0 to 1")
    watermark: dict[str, str] | None = Field(
        None,
        description="the invisible mark in its pixels: the service key's public id and the "
        "message (this image's random id, hex), as its manifest's soft binding records them",
    )


class GenerationResponse(BaseModel):
    """The images (OpenAI's ImagesResponse shape, with each image's seed)."""

    created: int
    model: str
    payload_sha256: str | None = None
    backend: str
    options: dict[str, Any]
    output_format: str
    size: str
    data: list[ImageItem]
    notes: list[str] = Field(default_factory=list, description="what was ignored, and why")


class InterpolationResponse(BaseModel):
    """The interpolation path's images."""

    model: str
    seeds: list[int]
    label: int | None = None
    output_format: str
    data: list[ImageItem]
    notes: list[str] = Field(default_factory=list)


class EditResponse(BaseModel):
    """An edited image (OpenAI's ImagesResponse shape)."""

    created: int
    operation: str
    options: dict[str, Any]
    width: int
    height: int
    size: str
    output_format: str
    data: list[ImageItem]
    notes: list[str] = Field(default_factory=list)
    report: dict[str, Any] = Field(default_factory=dict, description="what the edit found")


class FaceItem(BaseModel):
    """A detected face: box (x0, y0, x1, y1), score, landmarks, detector."""

    model_config = ConfigDict(extra="allow")

    box: list[float]
    score: float
    detector: str


class DetectionResponse(BaseModel):
    """The faces of an uploaded image."""

    width: int
    height: int
    detector: str
    faces: list[FaceItem]
    notes: list[str] = Field(default_factory=list)


class Listing(BaseModel):
    """GET /v1/models and GET /v1/edits."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class ModelListing(Listing):
    """GET /v1/models: the models, and what the service puts in every image it returns."""

    provenance: dict[str, Any] = Field(
        description="watermark: the key's public id, method and bits (null when off); "
        "credentials: the signer's subject and issuer (null when off)"
    )


# The body model of each JSON path, for naming its fields in errors.
BODIES: dict[str, type[BaseModel]] = {
    "/v1/images/generations": GenerationRequest,
    "/v1/images/interpolations": InterpolationRequest,
}


class ProvenanceResponse(BaseModel):
    """What an uploaded image says of its origin."""

    watermark: dict[str, Any] | None = Field(
        description="the service's mark read from the pixels: detected, p_value, matched of "
        "key_bits, the message (the image id the service gave it); null when the service marks "
        "nothing"
    )
    credentials: dict[str, Any] | None = Field(
        description="its C2PA manifest as c2pa's reader validates it: status (none, untrusted, "
        "trusted, tampered, unreadable), actions, model, soft binding, ingredients; null "
        "without the provenance extra"
    )


class ForensicsResponse(BaseModel):
    """Was an uploaded image generated, and which regions of a photo were edited?"""

    width: int
    height: int
    kind: str = Field(description="generated (a small image: the detector) or edited-regions")
    p_generated: float | None = Field(
        description="the probability that a small image was generated; null for photos"
    )
    generated: bool | None = None
    edited_share: float | None = Field(
        None, description="the share of a photo's pixels the localiser scores 0.7 or more"
    )
    max: float | None = None
    edited: bool | None = None
    model: str = Field(description="the zoo model that answered")
    note: str | None = None
    map_png_b64: str | None = Field(
        None, description="the photo's map as a PNG overlay, base64 (when the form asks: map=true)"
    )
