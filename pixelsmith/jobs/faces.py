"""The face operations: anonymise and restore the faces of a photo, found by a detector or given
as boxes (a JSON file: a list of [x0, y0, x1, y1] for every input, or `pixelsmith faces detect
--json` output, per file by its path relative to the input folder)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from torch import Tensor

from pixelsmith.data.degrade import imresize
from pixelsmith.edit.photo import Photo
from pixelsmith.errors import UserError
from pixelsmith.faces import anonymise as anon
from pixelsmith.faces import restore as rest
from pixelsmith.faces.blend import boxes_to_faces, check_margin, face_region
from pixelsmith.faces.detect import DETECTORS, check_detector, detect_faces
from pixelsmith.faces.match import THRESHOLD_FAR_1PCT
from pixelsmith.faces.types import Face
from pixelsmith.imageio import probe_image
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.options import Choice, File, Number, Several

FINDING = (
    Choice(
        "detector", "the face detector; auto is MTCNN when installed", choices=("auto", *DETECTORS)
    ),
    Number(
        "min_size",
        "the smallest face side searched, in pixels",
        20,
        whole=True,
        low=1,
        high=100_000,
    ),  # fmt: skip
    Number(
        "threshold",
        "drop faces scoring below this (MTCNN: O-Net's probability)",
        auto="0.7 for MTCNN, none for the others",
    ),
    Number("margin", "grow each box by this fraction of its size per side", 0.25, low=0, high=2),
    File("boxes", "JSON boxes instead of detection: [[x0, y0, x1, y1], ...] or detect --json"),
)


# What finding faces alone takes (faces detect and align, POST /v1/faces/detections).
DETECTING = tuple(o for o in FINDING if o.name in ("detector", "min_size", "threshold"))


def read_boxes(path: str | Path) -> dict[str, list[Face]] | list[Face]:
    """Boxes from a JSON file: a list of [x0, y0, x1, y1] (for every input), or the output of
    `pixelsmith faces detect --json` (per file: its path relative to the input folder, as
    detect writes it, or for one input file its own path)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"boxes file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"boxes file {p} is not JSON ({str(e).splitlines()[0]})") from None
    if isinstance(data, dict) and "faces" in data:
        data = [data]
    if not isinstance(data, list):
        raise UserError(f"boxes file {p} holds neither a list of boxes nor detect --json output")
    if all(isinstance(b, list | tuple) for b in data):
        return boxes_to_faces(data)
    per_file: dict[str, list[Face]] = {}
    for entry in data:
        if not isinstance(entry, dict) or "file" not in entry or "faces" not in entry:
            raise UserError(f"boxes file {p}: each entry needs 'file' and 'faces' (detect --json)")
        try:
            faces = [Face.from_dict(f) for f in entry["faces"]]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"boxes file {p}: a face entry is malformed ({e})") from None
        boxes_to_faces([f.box for f in faces])  # the same checks as plain boxes
        per_file[str(entry["file"])] = faces
    return per_file


def _boxes_of(boxes: Any, f: Path, rel: Path, single: bool) -> list[Face] | None:
    """The given boxes of one input (None when a boxes file names other files only)."""
    if isinstance(boxes, list):
        return boxes
    for key in (str(rel), str(f), rel.as_posix()):
        if key in boxes:
            return boxes[key]
    if single and len(boxes) == 1:  # one input file, one entry: detect on a path
        return next(iter(boxes.values()))
    return None


def _prepare(o: dict[str, Any], files: list[tuple[Path, Path]]) -> dict[Path, Any]:
    """Each file's boxes from the boxes file, each checked against its image; {} to detect."""
    if o["boxes"] is None:
        return {}
    given = read_boxes(o["boxes"])
    out: dict[Path, Any] = {}
    for f, rel in files:
        faces = _boxes_of(given, f, rel, len(files) == 1)
        h = probe_image(f)
        for face in faces or []:
            try:
                face_region(face, h.height, h.width, o["margin"])
            except UserError as e:
                raise UserError(f"{f}: {e}") from None
        out[f] = {"faces": faces or [], "note": None if faces is not None else "no boxes for it"}
    return out


def _faces(photo: Photo, o: dict[str, Any], ctx: Context) -> list[Face]:
    """The faces of a photo: given (boxes) or detected; reported in ctx.report."""
    if ctx.given is not None:
        faces = ctx.given["faces"]
        if ctx.given["note"]:
            ctx.report["note"] = f"{ctx.given['note']} in {o['boxes']}"
    else:
        faces = detect_faces(photo.colour, o["detector"], o["min_size"], o["threshold"])
    ctx.report["faces"] = len(faces)
    ctx.tick()
    return faces


@functools.lru_cache(maxsize=4)
def _generator(spec: str | None) -> Any:
    from pixelsmith.edit.latent.space import latent_space

    gen = anon.load_face_generator(spec)
    latent_space(gen)  # a generator without a latent space is refused before any work
    return gen


def _check_finding(o: dict[str, Any]) -> None:
    check_margin(o["margin"])
    if o["boxes"] is None:
        check_detector(o["detector"])


def _anonymise_check(o: dict[str, Any], _ctx: Context) -> None:
    _check_finding(o)
    anon.check_strength(o["blocks"], o["blur"])
    if o["method"] == "generate":
        _generator(None if o["generator"] is None else str(o["generator"]))


def _identity(original: Tensor, edited: Tensor, faces: list[Face]) -> list[float] | None:
    """The matcher's similarity of each face's box before and after (None without a matcher)."""
    try:
        from pixelsmith.faces.match import FaceMatcher
    except ImportError:  # the matcher's LBP codes need scikit-image
        return None
    matcher, out = FaceMatcher(), []
    _, h, w = original.shape
    for face in faces:
        x0, y0, x1, y1 = face.box
        t, lft = max(0, int(y0)), max(0, int(x0))
        b, r = min(h, int(y1) + 1), min(w, int(x1) + 1)
        if b - t < 4 or r - lft < 4:
            continue
        a, e = original[:, t:b, lft:r], edited[:, t:b, lft:r]
        out.append(round(float(matcher.similarity(a, e)), 4))
    return out


def _anonymise(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    faces = _faces(photo, o, ctx)
    gen = None
    if o["method"] == "generate" and faces:
        gen = _generator(None if o["generator"] is None else str(o["generator"]))
    done = anon.anonymise(
        photo.colour,
        faces,
        o["method"],
        o["margin"],
        o["feather"],
        None,
        o["seed"],
        gen,
        blocks=o["blocks"],
        blur=o["blur"],
    )
    ctx.report["regions"] = done.report()
    similar = ctx.report["identity_similarity"] = _identity(photo.colour, done.image, faces)
    if similar and max(similar) >= THRESHOLD_FAR_1PCT:
        k = similar.index(max(similar))
        ctx.report["note"] = (
            f"face {k} may still be recognisable (LBPH similarity {similar[k]:.2f} to the "
            f"original, at or above {THRESHOLD_FAR_1PCT}, where 1% of strangers fall): use a "
            "stronger setting"
        )
    return photo.with_pixels(done.image)


ANONYMISE = Operation(
    "anonymise",
    "Anonymise faces",
    "replace every face (box + margin) and feather it in; the rest stays untouched",
    _anonymise,
    (
        Choice("method", "how each face is replaced", choices=anon.METHODS),
        Number(
            "feather",
            "blend width in pixels, at most the margin's band: the face's box is always replaced",
            whole=True,
            low=0,
            high=10_000,
            auto="most of the margin's band",
        ),
        Number("seed", "first seed of the generated faces", 0, whole=True, low=0, high=2**63 - 1),
        Number(
            "blocks",
            "pixelate: blocks across a face",
            anon.PIXELATE_BLOCKS,
            whole=True,
            low=1,
            high=anon.MAX_BLOCKS,
        ),  # fmt: skip
        Number(
            "blur",
            "blur: sigma as a fraction of the face's size",
            anon.BLUR_FRACTION,
            low=0.01,
            high=2,
        ),
        File("generator", "face generator for method generate (default zoo:faces-stylegan)"),
        *FINDING,
    ),
    needs=("faces",),
    check=_anonymise_check,
    prepare=_prepare,
    alias=("faces", "anonymise"),
)


def _restore_check(o: dict[str, Any], _ctx: Context) -> None:
    _check_finding(o)
    rest.check_ops(o["ops"], o["scale"])


def _restore_size(h: int, w: int, o: dict[str, Any], _ctx: Context) -> tuple[int, int]:
    s = o["scale"] if "sr" in o["ops"] else 1
    return h * s, w * s


def _restore(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    faces = _faces(photo, o, ctx)
    out, regions = rest.restore_faces(photo.colour, faces, o["ops"], o["scale"], o["margin"])
    ctx.report["regions"] = [[r.top, r.left, r.bottom, r.right] for r in regions]
    alpha = photo.alpha
    if alpha is not None and out.shape[-2:] != alpha.shape[-2:]:
        alpha = imresize(alpha[None], size=tuple(out.shape[-2:]))[0].clamp(0, 1)
    return photo.with_pixels(out, alpha)


RESTORE_FACES = Operation(
    "restore-faces",
    "Restore faces",
    "run the shipped denoise / enhance / SR models on each face and blend them back",
    _restore,
    (
        Several(
            "ops",
            "restorations applied to each face in order",
            ("denoise", "enhance"),
            choices=rest.OPS,
            repeats=False,
        ),  # fmt: skip
        Choice("scale", "with sr: how many times the whole photo grows", choices=(2, 4)),
        *FINDING,
    ),
    needs=("faces",),
    size=_restore_size,
    check=_restore_check,
    prepare=_prepare,
    alias=("faces", "restore"),
)

OPERATIONS = (ANONYMISE, RESTORE_FACES)
