"""Generation over HTTP: the loaded models, the generation request's checks, the images.

Image i of a request is `sample(1, seed=seed + i)`, so any one can be remade alone from its
echoed seed; encoded images carry no metadata but what the service's stamp adds (jobs.stamp):
an invisible mark with a fresh image id (so a marked image is remade to within the mark, not
byte for byte) and a signed C2PA manifest saying which model made it from which options.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pixelsmith.errors import UserError
from pixelsmith.jobs.stamp import Stamp, model_identity
from pixelsmith.models.base import Family

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
    _identity: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def identity(self) -> tuple[str, str]:
        """The name and sha256 its images' manifests record (computed once)."""
        if self._identity is None:
            self._identity = model_identity(self.model, self.name)
        return self._identity

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


def model_name(name: str | None, models: dict[str, Served]) -> str:
    """The served model a request names (the only one, when it names none)."""
    name = name or (next(iter(models)) if len(models) == 1 else None)
    if name not in models:
        raise UserError(f"unknown model {name!r}; GET /v1/models lists {', '.join(models)}")
    return name


def check_options(options: dict[str, Any] | None, model: Family) -> dict[str, Any]:
    """Sampling options (those /v1/models lists for the model, e.g. truncation), checked by the
    model itself; {} when none are given."""
    if not options:
        return {}
    if "labels" in options:
        raise UserError("give classes as the request's labels, not as an option")
    try:
        model.sample_options(**options)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad sampling option: {e}") from None
    return dict(options)


def _tokens(text: str) -> list[str]:
    """Lower-case words, plurals made singular (boots -> boot, dresses -> dress)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [
        w[:-2] if w.endswith("sses") else w[:-1] if w.endswith("s") and not w.endswith("ss")
        and len(w) > 3 else w
        for w in words
    ]  # fmt: skip


def class_of(prompt: str, names: list[str]) -> int | None:
    """The class a prompt names: the class (or a part of a name like "T-shirt/top") whose words
    appear together in the prompt, the longest when several do; None when none does."""
    words, best, best_len = _tokens(prompt), None, 0
    for i, name in enumerate(names):
        for alias in (name, *name.split("/")):
            t = _tokens(alias)
            found = any(words[j : j + len(t)] == t for j in range(len(words) - len(t) + 1))
            if t and found and len(t) > best_len:
                best, best_len = i, len(t)
    return best


def check_labels(name: str, model: Family, labels: list[int]) -> None:
    """Refuse classes an unconditional model, or this one, does not have (said for HTTP)."""
    if not model.classes:
        raise UserError(f"{name} is unconditional: it takes no labels and draws from seeds alone")
    model.check_labels(labels)


def size_text(model: Family) -> str:
    """The model's image size as OpenAI writes sizes: WxH."""
    return f"{model.image_shape[2]}x{model.image_shape[1]}"


def check_size(size: str | None, offered: str, what: str) -> None:
    """Refuse a size other than the one offered (or auto), naming it."""
    if size is not None and size != "auto" and size.strip().lower() != offered:
        raise UserError(f"{what} {offered} images; size must be {offered} (or auto), got {size!r}")


def quality_of(quality: int | str, notes: list[str]) -> int:
    """The JPEG/WebP quality: a whole number as given; OpenAI's words are noted and ignored."""
    if isinstance(quality, str):
        notes.append(
            f"quality {quality!r} is ignored: each model here has one quality (a whole number "
            "1-100 sets the JPEG/WebP quality)"
        )
        return 90
    return quality


@dataclass
class Generation:
    """A checked generation request: what `generate` draws."""

    model: str
    n: int
    seed: int
    fmt: str
    response: str
    quality: int
    labels: list[int] | None
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def plan_generation(body: Any, models: dict[str, Served]) -> Generation:
    """The generation a typed request asks for, checked against its model; UserError (a 400)
    on anything the model cannot do."""
    name = model_name(body.model, models)
    model = models[name].model
    check_size(body.size, size_text(model), f"{name} draws")
    notes: list[str] = []
    labels = body.labels
    if labels is not None:
        check_labels(name, model, labels)
    if body.prompt:
        names = list(model.manifest.get("classes") or [])
        if labels is not None:
            notes.append("prompt is ignored: labels name the classes")
        elif not model.classes:
            notes.append(f"prompt is ignored: {name} is unconditional and draws from seeds alone")
        elif (k := class_of(body.prompt, names[: model.classes])) is not None:
            labels = [k]
            notes.append(f"prompt names the class {names[k]!r} ({k})")
        else:
            shown = ", ".join(names[: model.classes]) or f"0-{model.classes - 1}"
            notes.append(f"prompt names none of the classes ({shown}); each image's class "
                         "follows its seed")  # fmt: skip
    return Generation(
        model=name,
        n=body.n,
        seed=body.seed,
        fmt=body.output_format,
        response=body.response_format,
        quality=quality_of(body.quality, notes),
        labels=labels,
        options=check_options(body.options, model),
        notes=notes,
    )


def stamped(
    stamp: Stamp,
    image: torch.Tensor,
    encoder: Callable[[torch.Tensor], bytes],
    fmt: str,
    notes: list[str],
    action: str,
    **claim: Any,
) -> tuple[bytes, dict[str, str] | None]:
    """One image marked, encoded by `encoder` and signed (`Stamp.make`), with its mark's key id
    and message (None when unmarked); a note on an image too small to mark joins `notes`."""
    data, marked = stamp.make(image, encoder, MEDIA[fmt], action, **claim)
    if marked.note is not None and (note := stamp.small_note(marked.note)) not in notes:
        notes.append(note)
    mark = None
    if marked.binding is not None:
        mark = {"key_id": marked.binding["key_id"], "message": marked.binding["message"]}
    return data, mark


def generate(
    req: Generation,
    served: Served,
    check: Callable[[], None] = lambda: None,
    stamp: Stamp | None = None,
) -> list[dict[str, Any]]:
    """Each image of a checked request: its seed, and its bytes unless only seeds are asked,
    marked and signed as created by the model when `stamp` says so (notes join `req.notes`).

    Image i is `sample(1, seed=seed + i)` in its class (labels[i mod len], else seed mod
    classes): one image per seed, so any one can be remade alone; `check()` runs before each
    image (the queue's timeout).
    """
    stamp = stamp or Stamp()
    model, sha = served.identity() if stamp.signer is not None else (None, None)
    out = []
    for i in range(req.n):
        check()
        s = req.seed + i
        label = served.label_of(s, req.labels[i % len(req.labels)] if req.labels else None)
        item: dict[str, Any] = {"seed": s} if label is None else {"seed": s, "label": label}
        if req.response == "b64_json":
            image = served.image(s, label, req.options)
            options = {**item, **req.options}
            data, mark = stamped(stamp, image, lambda x: encode(x, req.fmt, req.quality),
                                 req.fmt, req.notes, "created", model=model, model_sha256=sha,
                                 options=options)  # fmt: skip
            item["b64_json"] = base64.b64encode(data).decode()
            if mark is not None:
                item["watermark"] = mark
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


def interpolate_seeds(
    req: Any,
    served: Served,
    check: Callable[[], None] = lambda: None,
    stamp: Stamp | None = None,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The images on the path between the two seeds' codes (the family's own rule: slerp in z,
    lerp in W), each with its position t, in one class (`label`, else the first seed's); the
    ends are the seeds' own images. Each is marked and signed as `generate`'s are."""
    from pixelsmith.edit.latent.interpolate import interpolate
    from pixelsmith.edit.latent.space import latent_space

    space = latent_space(served.model)
    if space.spec.layer_of:  # per-layer codes: a seed's is the same in every layer
        space = latent_space(served.model, space.spec.layer_of)
    codes = space.from_seeds(req.seeds)
    path = interpolate(space, codes[:1], codes[1:], req.steps)[0]
    labels = None
    label = served.label_of(req.seeds[0], req.label)
    if label is not None:
        labels = [label] * req.steps
    check()
    images = space.images(path, space.check_labels(labels, req.steps))
    t = torch.linspace(0, 1, req.steps).tolist()
    stamp = stamp or Stamp()
    model, sha = served.identity() if stamp.signer is not None else (None, None)
    said = notes if notes is not None else []
    out = []
    for ti, im in zip(t, images, strict=True):
        options = {"seeds": list(req.seeds), "steps": req.steps, "t": round(ti, 6),
                   "label": label, "space": space.kind, "path": space.interpolation}  # fmt: skip
        data, mark = stamped(stamp, im, lambda x: encode(x, req.output_format, req.quality),
                             req.output_format, said, "created", model=model, model_sha256=sha,
                             options=options)  # fmt: skip
        item: dict[str, Any] = {"t": round(ti, 6), "b64_json": base64.b64encode(data).decode()}
        if mark is not None:
            item["watermark"] = mark
        out.append(item)
    return out
