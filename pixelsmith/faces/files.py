"""`pixelsmith faces anonymise|restore IN -o OUT` on files: detect (or read boxes), edit, write.

As with `pixelsmith edit`, everything that can be checked is checked before the first write:
the inputs' headers, each output's format (and alpha) and that it overwrites no input, the
options, the boxes file and every given box against its image, the detector, the generator.
In a folder, a file whose header or data cannot be read is reported and skipped, never fatal;
a file where no face is found is written unchanged and said so. Alpha is kept; each file is
written atomically.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from pixelsmith.edit.files import _check, plan
from pixelsmith.edit.photo import read_photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.faces.blend import boxes_to_faces, check_margin, face_region
from pixelsmith.faces.detect import check_detector, detect_faces, list_inputs
from pixelsmith.faces.types import Face
from pixelsmith.imageio import probe_image

ACTIONS = ("anonymise", "restore")


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


def _boxes_of(boxes: Any, f: Path, rel: Path) -> list[Face] | None:
    """The given boxes of one input (None when a boxes file names other files only)."""
    if isinstance(boxes, list):
        return boxes
    for key in (str(rel), str(f), rel.as_posix()):
        if key in boxes:
            return boxes[key]
    if len(boxes) == 1 and str(rel) == f.name:  # one input file, one entry: detect on a path
        return next(iter(boxes.values()))
    return None


def _identity(original: Tensor, edited: Tensor, faces: Sequence[Face]) -> list[float] | None:
    """The matcher's similarity of each face's box before and after (None without a matcher)."""
    try:
        from pixelsmith.faces.match import FaceMatcher
    except ImportError:
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


def faces_files(
    action: str,
    src: str | Path,
    out: str | Path,
    *,
    method: str = "blur",
    ops: Sequence[str] = ("denoise", "enhance"),
    scale: int = 2,
    margin: float = 0.25,
    feather: int | None = None,
    boxes: str | Path | None = None,
    detector: str = "auto",
    min_size: int = 20,
    threshold: float | None = None,
    seed: int = 0,
    generator: str | Path | None = None,
    blocks: int | None = None,
    blur: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Anonymise or restore the faces of an image or a folder; one report entry per file."""
    from pixelsmith.faces import anonymise as anon
    from pixelsmith.faces import restore as rest

    if action not in ACTIONS:
        raise UserError(f"unknown face action {action!r}; use one of {', '.join(ACTIONS)}")
    check_margin(margin)
    if feather is not None and feather < 0:
        raise UserError(f"the feather width must be >= 0 pixels, got {feather}")
    strength = {}
    if blocks is not None:
        strength["blocks"] = blocks
    if blur is not None:
        strength["blur"] = blur
    if action == "anonymise":
        anon.check_method(method)
        anon.check_strength(**strength)
    else:
        rest.check_ops(ops, scale)
    source, dest = Path(src), Path(out)
    inputs, skipped = list_inputs(source)
    pairs = plan(source, dest)
    targets = {f: t for f, t in pairs}
    pairs = [(f, targets[f]) for f, _ in inputs]
    _check(pairs, "sr" if action == "restore" and "sr" in ops else action, scale, None)
    given = read_boxes(boxes) if boxes is not None else None
    per_file: dict[Path, list[Face] | None] = {}
    for (f, rel), _ in zip(inputs, pairs, strict=True):
        if given is None:
            continue
        faces = per_file[f] = _boxes_of(given, f, rel)
        h = probe_image(f)
        for face in faces or []:
            try:
                face_region(face, h.height, h.width, margin)
            except UserError as e:
                raise UserError(f"{f}: {e}") from None
    if given is None:
        detector = check_detector(detector)
    gen = None
    if action == "anonymise" and method == "generate":
        from pixelsmith.edit.latent.space import latent_space

        gen = anon.load_face_generator(generator)
        latent_space(gen)  # a generator without a latent space is refused before any work
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    for reason in skipped:
        say(f"skipped: {reason}")
    report = []
    for i, (f, target) in enumerate(pairs, 1):
        try:
            photo = read_photo(f)
        except UserError as e:  # a header that reads but data that does not: skip, go on
            say(f"skipped: {e}")
            continue
        if given is None:
            faces = detect_faces(photo.colour, detector, min_size, threshold)
        else:
            faces = per_file[f] or []
            if per_file[f] is None and progress:
                say(f"{f}: no boxes for it in {boxes}")
        entry: dict[str, Any] = {"file": str(f), "out": str(target), "faces": len(faces)}
        if action == "anonymise":
            done = anon.anonymise(
                photo.colour, faces, method, margin, feather, None, seed, gen, **strength
            )
            result, entry["regions"] = done.image, done.report()
            entry["identity_similarity"] = _identity(photo.colour, result, faces)
            alpha = None
        else:
            result, regions = rest.restore_faces(photo.colour, faces, ops, scale, margin)
            entry["regions"] = [[r.top, r.left, r.bottom, r.right] for r in regions]
            alpha = photo.alpha
            if photo.alpha is not None and result.shape[-2:] != photo.alpha.shape[-2:]:
                from pixelsmith.data.degrade import imresize

                alpha = imresize(photo.alpha[None], size=tuple(result.shape[-2:]))[0].clamp(0, 1)
        write_photo(photo.with_pixels(result, alpha), target)
        report.append(entry)
        if progress:
            what = f"{len(faces)} face(s)" if faces else "no face found (written unchanged)"
            say(f"[{i}/{len(pairs)}] {f} -> {target}: {what}")
    return report
