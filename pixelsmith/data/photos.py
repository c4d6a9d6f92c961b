"""Natural photographs: the Debian photos the restoration models train on, and the photos inside
Python wheels they are tested on (never trained on).

No photo set ships in a wheel. The training photos are free wallpapers and examples from five
Debian packages (`TRAIN_PACKAGES`); `training_photos()` finds them, installs the packages when
asked and run as root, and otherwise names the command. Each shipped model's recipe records the
list with sha256 hashes (`describe_files`). Of Debian's pictures only photographs are kept: no
logos, charts, chessboards, renders or synthetic test patterns, one size of each wallpaper, and
none of `opencv-doc`'s butterfly images (Set5's butterfly is a test case of bench/editing.py).

The hold-out set (`HOLDOUT`) is the photos that ship inside wheels the tests already need:
scikit-image's astronaut, camera, chelsea, coffee, rocket, motorcycle and three textures,
scikit-learn's two sample images and matplotlib's grace_hopper. They are found by package path,
without importing the packages.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pixelsmith.errors import UserError
from pixelsmith.utils.files import sha256_file

TRAIN_PACKAGES: tuple[str, ...] = (
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "plasma-workspace-wallpapers",
    "libjxl-testdata",
    "opencv-doc",
)

_MATE = "/usr/share/backgrounds/mate/"
_PLASMA = "/usr/share/wallpapers/{}/contents/images/{}"
_CV = "/usr/share/doc/opencv-doc/examples/"
TRAIN_FILES: tuple[str, ...] = (
    *(
        _MATE + f"nature/{n}.jpg"
        for n in [
            "Aqua",
            "Blinds",
            "Dune",
            "FreshFlower",
            "Garden",
            "GreenMeadow",
            "LadyBird",
            "RainDrops",
            "Storm",
            "TwoWings",
            "Wood",
            "YellowFlower",
        ]
    ),
    _MATE + "abstract/Elephants_3840x2160.jpg",
    *(
        f"/usr/share/backgrounds/{n}.jpg"
        for n in [
            "Bridge_by_Sander_Klootwijk",
            "Dragonfly_by_Bolly",
            "Picture_0B_by_freespace",
            "Picture_1A_by_freespace",
            "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi",
            "free_by_Peter_Nerlich",
            "friends_by_Aitzol_Berasategi",
            "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi",
            "umang_by_Abhishek_Mudgal",
        ]
    ),
    *(
        _PLASMA.format(n, "2560x1600.jpg")
        for n in [
            "Autumn",
            "BytheWater",
            "ColdRipple",
            "ColorfulCups",
            "DarkestHour",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "OneStandsOut",
            "Path",
            "summer_1am",
        ]
    ),
    _PLASMA.format("MilkyWay", "5120x2880.png"),
    _PLASMA.format("Altai", "5120x2880.png"),
    _PLASMA.format("SafeLanding", "5120x2880.jpg"),
    "/usr/share/libjxl-testdata/jxl/flower/flower.png",
    "/usr/share/libjxl-testdata/jxl/hdr_room.png",
    *(
        f"/usr/share/libjxl-testdata/external/wesaturate/500px/{n}_srgb8.png"
        for n in ("cvo9xd_keong_macan", "tmshre_riaphotographs", "u76c0g_bliznaca")
    ),
    *(
        _CV + f"data/{n}"
        for n in [
            "aero1.jpg",
            "aero3.jpg",
            "aloeL.jpg",
            "apple.jpg",
            "baboon.jpg",
            "building.jpg",
            "fruits.jpg",
            "graf1.png",
            "home.jpg",
            "left.jpg",
            "leuvenA.jpg",
            "messi5.jpg",
            "orange.jpg",
            "pca_test1.jpg",
            "rubberwhale1.png",
            "smarties.png",
            "squirrel_cls.jpg",
            "stuff.jpg",
        ]
    ),
    _CV + "alphamat/input_images/plant.jpg",
    *(_CV + f"text/scenetext0{i}.jpg" for i in range(1, 6)),
)

# Set5's butterfly (bicubic x4 about 22.1 dB PSNR-Y there): the published-comparable SR case.
BUTTERFLY = _CV + "data/butterfly.jpg"

# name -> (package, path inside the package)
HOLDOUT: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "camera": ("skimage", "data/camera.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "brick": ("skimage", "data/brick.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
# The hold-out images that are textures (the transfer-learning benchmark's "user folder").
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")


def install_command(packages: tuple[str, ...] = TRAIN_PACKAGES) -> str:
    """The shell command that installs the training photos."""
    return "apt-get install -y " + " ".join(packages)


def _package_of(path: str) -> str:
    if path.startswith(_MATE):
        return "mate-backgrounds"
    if path.startswith("/usr/share/backgrounds/"):
        return "lomiri-wallpapers-16.04"
    if path.startswith("/usr/share/wallpapers/"):
        return "plasma-workspace-wallpapers"
    if path.startswith("/usr/share/libjxl-testdata/"):
        return "libjxl-testdata"
    return "opencv-doc"


def training_photos(install: bool = False) -> list[Path]:
    """The training photos; missing packages are installed (`install`, as root) or named."""
    missing = sorted({_package_of(f) for f in TRAIN_FILES if not os.path.isfile(f)})
    alone = os.environ.get("WORLD_SIZE", "1") == "1"  # torchrun's ranks would race for dpkg
    if missing and install and alone and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} (training photos)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = install_command(tuple(missing)).split()
        done = subprocess.run(["apt-get", *cmd[1:]], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise UserError(f"`{install_command(tuple(missing))}` failed: {' '.join(tail)}")
        missing = sorted({_package_of(f) for f in TRAIN_FILES if not os.path.isfile(f)})
    if missing:
        how = "run as root" if os.geteuid() != 0 else "run"
        raise UserError(
            f"the training photos need the Debian packages {', '.join(missing)}: {how} "
            f"`{install_command(tuple(missing))}` (using the shipped models needs none of them)"
        )
    return [Path(f) for f in TRAIN_FILES]


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def holdout_photos(names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """The hold-out photos by name, found inside the installed wheels."""
    names = tuple(HOLDOUT) if names is None else names
    unknown = [n for n in names if n not in HOLDOUT]
    if unknown:
        raise UserError(f"no hold-out photo {unknown[0]!r}; they are {', '.join(HOLDOUT)}")
    found, lacking = {}, set()
    for name in names:
        package, rel = HOLDOUT[name]
        root = _package_dir(package)
        if root is None or not (root / rel).is_file():
            lacking.add({"skimage": "scikit-image"}.get(package, package))
            continue
        found[name] = root / rel
    if lacking:
        raise UserError(
            f"the hold-out photos live in the wheels of {', '.join(sorted(lacking))}: "
            f"pip install {' '.join(sorted(lacking))}"
        )
    return found


def describe_files(paths: list[Path]) -> list[dict[str, object]]:
    """Path, size and sha256 of each file (what a recipe records about its data)."""
    return [{"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths]
