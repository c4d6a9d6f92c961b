"""IN -o OUT: the one plan of every command that reads images and writes images.

IN is an image file or a folder of them (recursive; hidden files and folders are left out). The
rules, the same for every verb:

- Names. A folder comes back as a folder with the same relative paths. One file goes to OUT when
  OUT names a file (it has a suffix and is not an existing folder), else into the folder OUT
  under its own name. A verb that writes several files per input (a reconstruction and its code)
  takes OUT as their common stem (`-o shirt` writes shirt.png, shirt.safetensors); one that
  writes a folder per input (aligned face crops) takes OUT as a folder.
- Formats. An output keeps its input's format unless the verb writes one format (then the
  suffix is changed, and two inputs that would share a name, a.png and a.jpg, keep their own
  suffix in it: a.png.png and a.jpg.png). OUT's suffix must be one pixelsmith writes, and an image
  with alpha is refused a format without alpha (JPEG, BMP).
- Safety. Nothing overwrites an input (the images, a mask, a style image), and a folder's output
  may not lie inside that folder (a second run would take the results for inputs).
- Unreadable files. A file given alone that cannot be read is refused. In a folder, each file
  whose header cannot be read is skipped and counted (`Plan.skipped`), the same for every verb,
  and said in one line at the end (`say_skipped`); a folder with no readable image is refused.
- Size. Every header is checked against the pixel cap (`cap`, default `PIXELSMITH_MAX_PIXELS` or
  178 million) before anything is decoded; an image over it is refused, not skipped (it reads,
  and the limit is the user's to raise).

Everything here runs before the first file is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from pixelsmith.data.folder import IMAGE_EXTENSIONS, list_images
from pixelsmith.edit.photo import check_writable, output_format
from pixelsmith.errors import UserError, warn
from pixelsmith.imageio import ImageHeader, ImageTooLarge, probe_image

OUTPUTS = ("file", "stem", "crops")
_ALPHA_MODES = ("LA", "RGBA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Item:
    """One input and where its output goes."""

    source: Path
    rel: Path  # relative to the input folder (the file's name when the input is one file)
    stem: Path  # the output without its suffix
    suffix: str  # the output's suffix
    header: ImageHeader

    @property
    def target(self) -> Path:
        """The output file."""
        return self.output()

    def output(self, tag: str = "", suffix: str | None = None) -> Path:
        """An output file: the stem with a tag and a suffix (default: the plan's)."""
        return self.stem.with_name(
            self.stem.name + tag + (self.suffix if suffix is None else suffix)
        )

    @property
    def has_alpha(self) -> bool:
        """Whether the image read from the file has alpha (a palette may declare it)."""
        if self.header.mode == "P":
            with Image.open(self.source) as im:
                return "transparency" in im.info
        return self.header.mode in _ALPHA_MODES


@dataclass
class Plan:
    """The inputs of a command, where each output goes, and what was skipped."""

    src: Path
    out: Path
    items: list[Item]
    single: bool  # the input is one file
    skipped: list[str] = field(default_factory=list)  # one reason per file that was skipped

    def __len__(self) -> int:
        return len(self.items)

    def skip(self, reason: str) -> None:
        """Count a file that could not be read."""
        self.skipped.append(reason)

    def say_skipped(self) -> None:
        """One warning naming every skipped file and why (nothing when none was)."""
        if self.skipped:
            warn(f"skipped {len(self.skipped)} unreadable file(s) in {self.src}: "
                 + "; ".join(self.skipped))  # fmt: skip


def _is_inside(path: Path, folder: Path) -> bool:
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


# Suffixes that make OUT a file's name: the formats pixelsmith writes, others it reads (a
# mistake to refuse, not a folder to make) and a code file's.
_FILE_SUFFIXES = (*IMAGE_EXTENSIONS, ".gif", ".ppm", ".tga", ".dib", ".safetensors")
# A writable suffix for each format an input may be in (others are written as PNG).
_SUFFIX_OF = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


def _names_file(out: Path, trailing_slash: bool = False) -> bool:
    """Whether OUT names a file: it has an image (or code) suffix and is not a folder."""
    return not trailing_slash and out.suffix.lower() in _FILE_SUFFIXES and not out.is_dir()


def _kept_suffix(item: Item) -> str:
    """The suffix of an output that keeps its input's format (PNG when that cannot be written)."""
    if item.rel.suffix.lower() in IMAGE_EXTENSIONS:
        return item.rel.suffix
    return _SUFFIX_OF.get(item.header.format, ".png")


def find_inputs(
    src: str | Path, inputs: Iterable[str | Path | None] = (), cap: int | None = None
) -> Plan:
    """The readable images of IN with their headers, and the unreadable ones skipped (see the
    module doc); the plan's outputs are not named (each item's stem is its own source's)."""
    src = Path(src)
    others = [Path(p) for p in inputs if p is not None]
    cap = None if cap is None else check_cap(cap)
    if not src.exists():
        raise UserError(f"input {src} does not exist; pass an image file or a folder of images")
    if not src.is_dir():
        header = probe_image(src, cap)
        return Plan(src, src, [Item(src, Path(src.name), src.with_suffix(""), src.suffix,
                                    header)], single=True)  # fmt: skip
    files, _ = list_images(src)
    files = [f for f in files if all(f.resolve() != o.resolve() for o in others)]
    if not files:
        raise UserError(
            f"folder {src} holds no images (looked for {' '.join(IMAGE_EXTENSIONS)}); "
            "pass a folder of images"
        )
    found = Plan(src, src, [], single=False)
    for f in files:
        try:
            header = probe_image(f, cap)
        except ImageTooLarge:  # readable, and refused: the limit is the user's to raise
            raise
        except UserError as e:
            found.skip(short_reason(e, f))
            continue
        found.items.append(Item(f, f.relative_to(src), f.with_suffix(""), f.suffix, header))
    if not found.items:
        raise UserError(
            f"folder {src} holds no readable images ({len(found.skipped)} unreadable: "
            f"{'; '.join(found.skipped)})"
        )
    return found


def plan(
    src: str | Path,
    out: str | Path,
    *,
    outputs: str = "file",
    suffix: str | None = None,
    suffixes: tuple[str, ...] = (),
    inputs: Iterable[str | Path | None] = (),
    cap: int | None = None,
) -> Plan:
    """The plan of IN -o OUT (see the module doc).

    `outputs`: "file" (one output per input, at OUT or under the folder OUT), "stem" (several,
    whose suffixes are `suffixes`: OUT is their stem) or "crops" (any number per input, named
    STEM_TAG by `Item.output`, always under the folder OUT).
    `suffix`: the one format the verb writes (".png"), else each output keeps its input's.
    `inputs`: other files the command reads (a mask, a style image), left out of a folder's
    images and never overwritten. `cap`: the most pixels a header may declare.
    """
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}")
    slash = isinstance(out, str) and out.endswith(("/", os.sep))  # `-o results/`: a folder
    src, out = Path(src), Path(out)
    others = [Path(p) for p in inputs if p is not None]
    renamed = suffix is not None or outputs != "file"
    if src.is_dir() and (out.exists() and not out.is_dir() or _names_file(out, slash)):
        raise UserError(f"a folder of inputs needs an output folder, not the file {out}")
    found = find_inputs(src, others, cap)
    result = Plan(src, out, [], found.single, found.skipped)
    first = found.items[0]
    if not found.single:
        result.items = _name(found.items, out, suffix, renamed)
    elif outputs == "crops" and (_names_file(out, slash) or out.exists() and not out.is_dir()):
        raise UserError(f"-o {out} is a file; this writes a folder of images, name a folder")
    elif outputs == "stem" and not out.is_dir() and not slash:
        stem = out.with_suffix("") if out.suffix.lower() in suffixes else out
        result.items = [replace(first, stem=stem, suffix=suffix or "")]
    elif outputs == "file" and _names_file(out, slash):
        if suffix is not None and out.suffix.lower() != suffix:
            raise UserError(f"output {out} must be a {suffix} file or a folder")
        result.items = [replace(first, stem=out.with_suffix(""), suffix=out.suffix)]
    else:
        result.items = _name(found.items, out, suffix, renamed)
    _check_safe(result, others, outputs, suffixes)
    return result


def check_cap(cap: int) -> int:
    """A pixel limit given as an argument (`--max-pixels`), or UserError."""
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise UserError(f"--max-pixels must be a positive whole number of pixels, got {cap}")
    return cap


def short_reason(e: UserError, f: Path) -> str:
    """A reader's error as `name (reason)`, without the advice."""
    text = str(e)
    prefix = f"image {f} "
    reason = text[len(prefix) :] if text.startswith(prefix) else text
    return f"{f.name} ({reason.split('; ')[0]})"


def _name(found: list[Item], out: Path, suffix: str | None, renamed: bool) -> list[Item]:
    """The items under the folder `out`, at their paths relative to the input; with `renamed`
    (the outputs do not keep their input's suffix), inputs that share a stem keep their suffix
    in the output's name."""
    stems = [i.rel.with_suffix("") for i in found]
    shared = {s for s in stems if stems.count(s) > 1} if renamed else set()
    return [
        replace(i, stem=out / (i.rel if stem in shared else stem), suffix=suffix or _kept_suffix(i))
        for i, stem in zip(found, stems, strict=True)
    ]


def _check_safe(p: Plan, others: list[Path], outputs: str, suffixes: tuple[str, ...]) -> None:
    """No output overwrites an input; a folder's outputs stay outside it; formats are writable."""
    inputs = {i.source.resolve() for i in p.items} | {o.resolve() for o in others}
    seen: dict[str, Item] = {}
    for item in p.items:  # two inputs to one output: refused (case-blind, as some disks are)
        key = str(item.target if outputs == "file" else item.stem).casefold()
        if key in seen:
            raise UserError(
                f"{seen[key].source.name} and {item.source.name} would both be written to "
                f"{item.target}; rename one of them"
            )
        seen[key] = item
    for item in p.items:
        if outputs == "crops":
            continue  # named STEM_TAG.png outside every input folder: checked below
        names = [item.output(suffix=s) for s in suffixes] if outputs == "stem" else [item.target]
        for target in names:
            if target.resolve() in inputs:
                raise UserError(f"writing {target} would overwrite an input; choose another output")
            if target.is_dir():
                raise UserError(f"{target} is a folder; choose another output")
        if outputs == "file":
            output_format(item.target)
    if not p.single and _is_inside(p.out, p.src):
        raise UserError(
            f"-o {p.out} lies inside the input folder {p.src}; choose a folder outside it"
        )


def check_alpha(item: Item, keeps_alpha: bool = True) -> None:
    """Refuse an output format that would lose the input's alpha (JPEG, BMP)."""
    if keeps_alpha:
        check_writable(item.has_alpha, item.target)
