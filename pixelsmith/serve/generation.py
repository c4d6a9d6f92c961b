"""Generation over HTTP: the loaded models, the generation request's checks, the images.

Image i of a request is `sample(1, seed=seed + i)`, so any one can be remade alone from its
echoed seed, byte for byte; encoded images carry no metadata at all.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Callable
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


@dataclass
class Served:
    """A loaded model and what /v1/models says of it."""

    name: str
    model: Family
    source: str
    backend: Any = None  # a pixelsmith.deploy.backends.Backend; None = the model's own sample
    _space: Any = field(default=None, init=False, repr=False)

    def label_of(self, seed: int, label: int | None = None) -> int | None:
        """The class a seed's image is drawn in: `label`, else seed mod classes (None when the
        model is unconditional), so a seed alone names its image."""
        if not self.model.classes:
            return None
        return int(label) if label is not None else seed % self.model.classes

    def image(
        self, seed: int, label: int | None = None, options: dict[str, Any] | None = None
    ) -> torch.Tensor:
        """The image `sample(1, seed=seed, labels=[label], **options)` draws, through the
        backend when the options are the model's own (eager otherwise)."""
        label = self.label_of(seed, label)
        labels = None if label is None else [label]
        if self.backend is None or self.backend.name == "eager" or options:
            extra = {} if labels is None else {"labels": labels}
            return self.model.sample(1, seed=seed, **extra, **(options or {}))[0]
        space = self._z_space()
        feeds = {"z": space.from_seeds([seed]).cpu()}
        if space.classes:
            feeds["labels"] = torch.tensor(labels or [0])
        return self.backend.run(feeds)[0].clamp(0, 1)

    def _z_space(self) -> Any:
        """The model's z space, made once (each backend image draws its code from it)."""
        if self._space is None:
            from pixelsmith.edit.latent.space import latent_space

            self._space = latent_space(self.model, "z")
        return self._space

    def backend_name(self, options: dict[str, Any] | None = None) -> str:
        """The backend an image with these sampling options is drawn on."""
        if self.backend is None or options:
            return "eager"
        return self.backend.name

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
            "backend": self.backend_name(),
        }


def encode(image: torch.Tensor, fmt: str, quality: int = 90) -> bytes:
    """One (C, H, W) image in [0, 1] as file bytes, with no metadata at all."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    options = {"quality": quality} if fmt in ("jpeg", "webp") else {}
    im.save(buf, format=FORMATS[fmt], **options)
    return buf.getvalue()


def _model_of(body: Any, fields: set[str], models: dict[str, Served]) -> str:
    """The model a JSON request names (the only one, when it names none), after refusing a
    body that is not an object or has a field outside `fields` + model, output_format, quality."""
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    known = fields | {"model", "output_format", "quality"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}")
    name = body.get("model") or (next(iter(models)) if len(models) == 1 else None)
    if name not in models:
        raise UserError(f"unknown model {name!r}; GET /v1/models lists {', '.join(models)}")
    return name


def check_request(body: Any, models: dict[str, Served]) -> dict[str, Any]:
    """The generation request's fields, checked; UserError (a 400) on anything wrong."""
    name = _model_of(body, {"n", "seed", "response_format", "labels", "options"}, models)
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
    options = check_options(body.get("options"), models[name].model)
    return dict(
        model=name,
        n=n,
        seed=seed,
        fmt=fmt,
        response=response,
        quality=quality,
        labels=labels,
        options=options,
    )


def check_options(options: Any, model: Family) -> dict[str, Any]:
    """Sampling options (those /v1/models lists for the model, e.g. truncation), checked by the
    model itself; {} when none are given."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise UserError('options must be an object of sampling options, e.g. {"truncation": 0.7}')
    if "labels" in options:
        raise UserError("give classes as the request's labels, not as an option")
    try:
        model.sample_options(**options)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad sampling option: {e}") from None
    return dict(options)


def generate(
    req: dict[str, Any], served: Served, check: Callable[[], None] = lambda: None
) -> list[dict[str, Any]]:
    """Each image of a checked request: its seed, and its bytes unless only seeds are asked.

    Image i is `sample(1, seed=seed + i)` in its class (labels[i mod len], else seed mod
    classes): one image per seed, so any one can be remade alone; `check()` runs before each
    image (the queue's timeout).
    """
    out = []
    for i in range(req["n"]):
        check()
        s = req["seed"] + i
        label = served.label_of(s, req["labels"][i % len(req["labels"])] if req["labels"] else None)
        item: dict[str, Any] = {"seed": s} if label is None else {"seed": s, "label": label}
        if req["response"] == "b64_json":
            image = served.image(s, label, req["options"])
            item["b64_json"] = base64.b64encode(encode(image, req["fmt"], req["quality"])).decode()
        out.append(item)
    return out


def load_served(targets: list[str]) -> dict[str, Served]:
    """Generators and translators from run folders, checkpoints or zoo:NAME, named by their last
    path part."""
    from pixelsmith.generate.load import load_model

    out: dict[str, Served] = {}
    for t in targets:
        model = load_model(t)
        if not (model.abilities.generates or model.abilities.translates):
            raise UserError(
                f"{t} is a {model.name} model; the service serves generators and translators "
                "(the shipped editing models are served without being named)"
            )
        name = t[4:] if t.startswith("zoo:") else t.rstrip("/").split("/")[-1]
        if name in out:
            raise UserError(f"two models would both be called {name!r}")
        out[name] = Served(name, model.eval(), t)
    return out


def choose_backends(
    served: dict[str, Served], backend: str = "auto", candidates: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Put each generator on `backend`, or with "auto" on the one of `candidates` (default: the
    whole ladder) that `bench latency` finds fastest at batch 1 among those agreeing with eager
    (eager when none beats it or the model does not export); returns name -> the backend
    chosen, with the reason on a fallback."""
    from pixelsmith.deploy import backends as ladder

    if backend != "auto" and backend not in ladder.BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use auto or {', '.join(ladder.BACKENDS)}")
    chosen: dict[str, str] = {}
    for name, s in served.items():
        if not s.model.abilities.generates:
            continue
        pick = backend
        try:
            if backend == "auto":
                rows = ladder.latency(
                    s.model, candidates or ladder.BACKENDS, rounds=12, batch=1, throughput_rounds=1
                )
                pick = ladder.fastest(rows, by="p50_ms")
            with tempfile.TemporaryDirectory() as tmp:
                s.backend = ladder.build(pick, s.model, Path(tmp))
            chosen[name] = pick
        except UserError as e:
            s.backend = None
            chosen[name] = f"eager ({e})"
    return chosen


def _whole(body: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise UserError(f"{key} must be a whole number from {lo} to {hi}, got {v!r}")
    return v


def check_interpolation(body: Any, models: dict[str, Served]) -> dict[str, Any]:
    """The interpolation request's fields, checked; UserError (a 400) on anything wrong."""
    name = _model_of(body, {"seeds", "steps", "label"}, models)
    seeds = body.get("seeds")
    if (
        not isinstance(seeds, list)
        or len(seeds) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds)
        or not all(0 <= v <= MAX_SEED for v in seeds)
    ):
        raise UserError(f"seeds must be a list of two whole numbers from 0 to {MAX_SEED}")
    fmt = body.get("output_format", "png")
    if fmt not in FORMATS:
        raise UserError(f"output_format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model = models[name].model
    label = body.get("label")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int):
            raise UserError(f"label must be a class number, got {label!r}")
        model.check_labels([label])
    return dict(
        model=name,
        seeds=seeds,
        steps=_whole(body, "steps", 2, MAX_N, 8),
        label=label,
        fmt=fmt,
        quality=_whole(body, "quality", 1, 100, 90),
    )


def interpolate_seeds(
    req: dict[str, Any], served: Served, check: Callable[[], None] = lambda: None
) -> list[dict[str, Any]]:
    """The images on the path between the two seeds' codes (the family's own rule: slerp in z,
    lerp in W), each with its position t, in one class (`label`, else the first seed's); the
    ends are the seeds' own images."""
    from pixelsmith.edit.latent.interpolate import interpolate
    from pixelsmith.edit.latent.space import latent_space

    space = latent_space(served.model)
    if space.kind == "w+":  # W: a seed's code is the same in every layer
        space = latent_space(served.model, "w")
    codes = space.from_seeds(req["seeds"])
    path = interpolate(space, codes[:1], codes[1:], req["steps"])[0]
    labels = None
    label = served.label_of(req["seeds"][0], req["label"])
    if label is not None:
        labels = [label] * req["steps"]
    check()
    images = space.images(path, space.check_labels(labels, req["steps"]))
    t = torch.linspace(0, 1, req["steps"]).tolist()
    return [
        {
            "t": round(ti, 6),
            "b64_json": base64.b64encode(encode(im, req["fmt"], req["quality"])).decode(),
        }
        for ti, im in zip(t, images, strict=True)
    ]
