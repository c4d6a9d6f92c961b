"""The second hold-out: images that are not photographs (paintings, scans of manuscripts, a
woodcut and engraved music, an illustrated map, painted textures), from free Debian packages that
nothing in pixelsmith trains on. Restoration benchmarks report on it beside the photo hold-out
(`photos.HOLDOUT`), to show what a model learnt from photographs does on other sources.

The files are found under a root (default `/`, where `apt-get install` puts them; or the folder
`scripts/get-art-holdout.sh DIR` fills with `dpkg-deb -x` of the downloaded packages, without
installing them) and checked against their sha256. `art_crops` is the protocol: the image as RGB,
its short side brought to at most `SHORT_SIDE` with Pillow's LANCZOS (a 1200-dpi scan otherwise
holds almost no detail per pixel), then the centre `size` x `size` crop.

Licences (each package's /usr/share/doc/PKG/copyright): Wesnoth GPL-2+; the Aboensis scans
CC BY 4.0 (reproductions by Riksarkivet and Kungliga biblioteket); the Missaali woodcut (1488) is
public domain in LPPL-1.3c documentation; LilyPond's documentation GFDL-1.3+; Krita GPL and LGPL.
pixelsmith ships none of these files: it only names them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsmith.errors import UserError
from pixelsmith.imageio import read_natural
from pixelsmith.utils.files import sha256_file

SHORT_SIDE = 512
# name -> (Debian package, kind, path, sha256 of the file)
ART_HOLDOUT: dict[str, tuple[str, str, str, str]] = {
    "wesnoth-story-castle": (
        "wesnoth-1.16-data",
        "painting",
        "/usr/share/games/wesnoth/1.16/data/core/images/story/landscape-castle.jpg",
        "4b0123c6033dec7dce26e6ac83eafa2c59807cf8eaaec57351ee67b175d83f7b",
    ),
    "wesnoth-story-battlefield": (
        "wesnoth-1.16-data",
        "painting",
        "/usr/share/games/wesnoth/1.16/data/core/images/story/landscape-battlefield.jpg",
        "e6b59ef4e0eb6fa41ddbc27fa5a28c494eb89f8d142bf0c2fc76b2703d8b574d",
    ),
    "wesnoth-httt-heir": (
        "wesnoth-1.16-httt",
        "painting",
        "/usr/share/games/wesnoth/1.16/data/campaigns/Heir_To_The_Throne/images/story/arrival_of_the_heir.png",
        "95c2a30c7459ab043bf7310dad026bf5332481cf9a0754e99872672950629182",
    ),
    "wesnoth-ttb-story": (
        "wesnoth-1.16-ttb",
        "painting",
        "/usr/share/games/wesnoth/1.16/data/campaigns/Two_Brothers/images/story/Two_Brothers_M2P1.png",
        "8417231a2d3d35e6c0c52f85df3d54fa36693ce65ffcae04bf4603b4a2c51126",
    ),
    "aboensis-charter-sdhk20000": (
        "texlive-fonts-extra-doc",
        "scan",
        "/usr/share/doc/texlive-doc/fonts/aboensis/doc/pics/SDHK20000.jpg",
        "558452749fb2f1af6f1c5ddc55dd325b604675e606d9a32b690c58b52c8256bd",
    ),
    "aboensis-codex-f22r": (
        "texlive-fonts-extra-doc",
        "scan",
        "/usr/share/doc/texlive-doc/fonts/aboensis/doc/pics/kununx_balk.jpg",
        "7e335679dad456bdc9c9aac5069cac5d879a84c221d712c02747b9f74a330ece",
    ),
    "aboensis-codex-f78v": (
        "texlive-fonts-extra-doc",
        "scan",
        "/usr/share/doc/texlive-doc/fonts/aboensis/doc/pics/aboensis-78v.png",
        "336b193dc073543e0dd43d9061e266d4342adff696d76f0a3783f7ea5b55f8df",
    ),
    "missaali-woodcut-1488": (
        "texlive-fonts-extra-doc",
        "scan",
        "/usr/share/doc/texlive-doc/fonts/missaali/missale-preface.png",
        "6c5bc81a01640b1dea25a9cf185f65b41ebc931d7f8ca98f5405efc5bad87fff",
    ),
    "lilypond-baer-sarabande-scan": (
        "lilypond-doc-html",
        "scan",
        "/usr/share/doc/lilypond/html/Documentation/pictures/baer-sarabande-original.jpg",
        "a1520f05e8b39740d0b2dce64c9fd5f0237143a8c0a37237358be9ffe88a37d0",
    ),
    "lilypond-bwv861-gesellschaft": (
        "lilypond-doc",
        "scan",
        "/usr/share/doc/lilypond/html/Documentation/pictures/bwv861-gesellschaft.png",
        "2021e0ff56038dab8e68e0a6c434225e94d9a2c6ad9aa8820af499d93b5d83a3",
    ),
    "wesnoth-map": (
        "wesnoth-1.16-data",
        "illustration",
        "/usr/share/games/wesnoth/1.16/data/core/images/maps/wesnoth.png",
        "adc599ed320babdb0c56d4193db8553bb6f757034cceb87fe1726dd2a6968daf",
    ),
    "krita-impasto-texture": (
        "krita-data",
        "texture",
        "/usr/share/krita/patterns/Rough_Wall_With_Impasto.png",
        "0ce1010caafab0314ed91aa5ee958bce327a72c4a5f191f92101e034c8bde094",
    ),
    "krita-rough-canvas": (
        "krita-data",
        "texture",
        "/usr/share/krita/patterns/02_rough-canvas.png",
        "3953f1faf3b620713fa7cbf15c3b989de826f54890e9fdeebb602dd402e087e3",
    ),
}
ART_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(v[0] for v in ART_HOLDOUT.values()))


def fetch_command(root: str = "DIR") -> str:
    """The shell command that puts the images under `root` without installing anything."""
    return f"sh scripts/get-art-holdout.sh {root}"


def art_holdout(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The images by name under `root` (default: $PIXELSMITH_ART_HOLDOUT, else /), checked."""
    base = Path(root or os.environ.get("PIXELSMITH_ART_HOLDOUT") or "/")
    found, missing, changed = {}, [], []
    for name, (package, _, path, sha) in ART_HOLDOUT.items():
        file = base / path.lstrip("/")
        if not file.is_file():
            missing.append(package)
        elif sha256_file(file) != sha:
            changed.append(str(file))
        else:
            found[name] = file
    if missing:
        raise UserError(
            f"the art hold-out needs the Debian packages {', '.join(dict.fromkeys(missing))} "
            f"under {base}: run `{fetch_command()}` and give DIR (or apt-get install them)"
        )
    if changed:
        raise UserError(f"{changed[0]} is not the file the art hold-out was made from (sha256)")
    return found


def art_images(root: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Every image as uint8 RGB (H, W, 3), Lanczos-reduced to a short side of at most
    SHORT_SIDE."""
    out = {}
    for name, path in art_holdout(root).items():
        arr, _ = read_natural(path)
        arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        h, w = arr.shape[:2]
        if min(h, w) > SHORT_SIDE:
            f = SHORT_SIDE / min(h, w)
            im = Image.fromarray(np.ascontiguousarray(arr))
            arr = np.asarray(im.resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS))
        out[name] = arr
    return out


def art_crops(root: str | os.PathLike | None = None, size: int = 256) -> dict[str, np.ndarray]:
    """Every image of `art_images`, centre size crop."""
    out = {}
    for name, arr in art_images(root).items():
        h, w = arr.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        out[name] = np.ascontiguousarray(arr[y : y + size, x : x + size])
    return out
