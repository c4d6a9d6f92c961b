"""The art hold-out: the fetch script names its packages, files are checked by hash, a missing
package is named with the command that fetches it, and the crop protocol is Pillow's LANCZOS to a
512 short side then the centre crop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelsmith.data import art
from pixelsmith.errors import UserError
from pixelsmith.utils.files import sha256_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "get-art-holdout.sh"


def test_the_fetch_script_fetches_every_package_and_no_training_one():
    from pixelsmith.data.photos import TRAIN_PACKAGES

    listed = re.search(r'^pkgs="([^"]+)"', SCRIPT.read_text(), re.M).group(1).split()
    assert listed == list(art.ART_PACKAGES)
    assert not set(listed) & set(TRAIN_PACKAGES)
    assert len(art.ART_HOLDOUT) >= 12
    assert {kind for _, kind, _, _ in art.ART_HOLDOUT.values()} >= {"painting", "scan"}


def _fake(tmp_path, monkeypatch, sizes):
    """A hold-out of generated images under tmp_path, with their real hashes."""
    rng = np.random.default_rng(0)
    table = {}
    for i, (w, h) in enumerate(sizes):
        rel = f"/usr/share/x/{i}.png"
        path = tmp_path / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        table[f"img{i}"] = ("pkg", "painting", rel, sha256_file(path))
    monkeypatch.setattr(art, "ART_HOLDOUT", table)
    return table


def test_crops_follow_the_protocol(tmp_path, monkeypatch):
    table = _fake(tmp_path, monkeypatch, [(1200, 800), (300, 280)])
    crops = art.art_crops(tmp_path, size=256)
    big = Image.open(tmp_path / table["img0"][2].lstrip("/"))
    want = np.asarray(big.resize((768, 512), Image.Resampling.LANCZOS))[128:384, 256:512]
    assert np.array_equal(crops["img0"], want)
    small = np.asarray(Image.open(tmp_path / table["img1"][2].lstrip("/")))
    assert np.array_equal(crops["img1"], small[12:268, 22:278])  # not resized: short side 280


def test_missing_or_changed_files_are_refused(tmp_path, monkeypatch):
    table = _fake(tmp_path, monkeypatch, [(300, 300)])
    with pytest.raises(UserError, match="get-art-holdout.sh"):
        art.art_holdout(tmp_path / "elsewhere")
    path = tmp_path / table["img0"][2].lstrip("/")
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(UserError, match="sha256"):
        art.art_holdout(tmp_path)
