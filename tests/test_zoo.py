"""The zoo: a tiny trained run exported into a temporary zoo is listed, shown, verified, loaded and
sampled as zoo:NAME; a damaged file is caught by verify and by loading; an unknown name is one
sentence; `pixelsmith train zoo:NAME` re-makes the entry and says whether it matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY

from pixelsmith import zoo
from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.models.gan import GAN
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.files import sha256_file

STEPS = 3
RECIPE = {
    "command": f"pixelsmith train dcgan --data shapes --steps {STEPS}",
    "data": {
        "description": "procedural shapes, 128 images of 16x16",
        "files": [{"name": "shapes.idx", "sha256": "ab" * 32}],
    },
}
RESULTS = {
    "command": "pixelsmith eval zoo:tiny-gan --n 100",
    "split": "test",
    "metrics": {"fid": 100.0, "kid": 0.05},
    "tolerance": {"kid": 0.01},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny GAN trained a few steps."""
    cfg = build_config(
        "dcgan", overrides=[*TINY, f"train.steps={STEPS}", "train.eval_at_end=false"]
    )
    return train(cfg, tmp_path_factory.mktemp("runs"), progress=False)


@pytest.fixture
def home(tmp_path, monkeypatch, run):
    """A temporary zoo ($PIXELSMITH_ZOO) holding the run as tiny-gan."""
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    zoo.export_run(run, "tiny-gan", RECIPE, RESULTS)
    return tmp_path / "zoo"


def test_export_writes_a_slim_checkpoint_that_loads_as_the_run(home, run):
    e = zoo.entry("tiny-gan")
    assert e.file == home / "weights" / "tiny-gan.safetensors"
    tensors, man = ckf.load_checkpoint(e.file)
    assert tensors and all(k.startswith("net/") for k in tensors)
    assert {"resume", "batches"}.isdisjoint(man) and man["family"] == "gan"
    assert e.sha256 == sha256_file(e.file) and e.payload_sha256 == man["payload_sha256"]
    # The recipe carries the run's resolved config, its seed and steps.
    run_man = ckf.read_manifest(ckf.resolve_checkpoint(run))
    assert e.recipe["config"] == run_man["config"] and e.recipe["command"] == RECIPE["command"]
    assert (e.recipe["seed"], e.recipe["steps"]) == (0, STEPS)
    assert e.results == RESULTS and e.headline() == "fid 100"
    # from_checkpoint reads it unchanged, and zoo:NAME samples what the run samples.
    assert isinstance(GAN.from_checkpoint(e.file), GAN)
    torch.testing.assert_close(
        load_model("zoo:tiny-gan").sample(4, seed=1), load_model(run).sample(4, seed=1)
    )
    # Exporting again updates the entry instead of adding another.
    zoo.export_run(run, "tiny-gan", RECIPE, {**RESULTS, "metrics": {"fid": 90.0}})
    assert list(zoo.entries()) == ["tiny-gan"] and zoo.entry("zoo:tiny-gan").headline() == "fid 90"


def test_the_cli_lists_shows_verifies_and_samples(home, tmp_path, capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "family", "size", "result"]
    assert out[1].startswith("tiny-gan") and " gan " in out[1] and "fid 100" in out[1]
    assert main(["zoo", "show", "tiny-gan"]) == 0
    shown = capsys.readouterr().out
    for text in (RECIPE["command"], "ab" * 32, RESULTS["command"], "kid", "0.05", "steps 3"):
        assert text in shown, text
    assert main(["zoo", "show", "tiny-gan", "--json"]) == 0
    index = json.loads((home / "index.json").read_text())
    assert json.loads(capsys.readouterr().out) == {
        "name": "tiny-gan",
        **index["models"]["tiny-gan"],
    }
    assert main(["zoo", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok       tiny-gan")
    png = tmp_path / "s.png"
    assert main(["sample", "zoo:tiny-gan", "-n", "4", "-o", str(png)]) == 0 and png.is_file()


def test_a_damaged_file_is_caught_by_verify_and_by_loading(home, tmp_path, capsys):
    f = home / "weights" / "tiny-gan.safetensors"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    assert [(n, ok) for n, ok, _ in zoo.verify()] == [("tiny-gan", False)]
    assert main(["zoo", "verify"]) == 1
    cap = capsys.readouterr()
    assert cap.out.startswith("DAMAGED  tiny-gan") and "tiny-gan" in cap.err
    with pytest.raises(UserError, match="zoo model tiny-gan is damaged .* reinstall pixelsmith"):
        load_model("zoo:tiny-gan")
    assert main(["sample", "zoo:tiny-gan", "-o", str(tmp_path / "x.png")]) == 2
    f.unlink()
    assert "missing" in zoo.verify()[0][2]


def test_an_unknown_name_is_one_sentence_with_exit_code_2(home, tmp_path, capsys):
    assert main(["sample", "zoo:tiny-gn", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean tiny-gan?" in err
    assert "`pixelsmith zoo list`" in err
    assert main(["zoo", "show", "nothing-like-it"]) == 2
    with pytest.raises(UserError, match="holds no models yet"):
        zoo.entry("tiny-gan", tmp_path / "empty")
    assert zoo.entries(tmp_path / "empty") == {} and zoo.verify(tmp_path / "empty") == []


def test_export_refuses_a_recipe_or_name_it_cannot_index(run, tmp_path):
    for recipe, results, name, why in (
        ({"data": "x"}, RESULTS, "a", "command"),
        ({**RECIPE, "data": {"files": [{"name": "f"}]}}, RESULTS, "a", "sha256"),
        (RECIPE, {"command": "c", "metrics": {}}, "a", "metrics"),
        (RECIPE, {**RESULTS, "metrics": {"fid": "low"}}, "a", "number"),
        (RECIPE, RESULTS, "Bad Name", "lower-case"),
    ):
        with pytest.raises(UserError, match=why):
            zoo.export_run(run, name, recipe, results, out_dir=tmp_path)
    assert not (tmp_path / "index.json").exists()


def test_train_zoo_name_remakes_the_entry_and_says_whether_it_matches(home, tmp_path, capsys):
    out = tmp_path / "remade"
    assert main(["train", "zoo:tiny-gan", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("identical: the re-made weights are zoo:tiny-gan's")
    # A shorter re-make differs; its results are compared with the entry's, within tolerance.
    assert main(["train", "zoo:tiny-gan", "--steps", "1", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "different weights" in said and "steps: 1 re-made, 3 in the recipe" in said
    assert "fid: not measured" in said
    short = sorted(out.iterdir())[-1]
    man = json.loads((short / "manifest.json").read_text())
    man["scores"] = [
        {"card": {"metric": "fid"}, "value": 300.0, "step": 0},  # older: the newest one counts
        {"card": {"metric": "fid"}, "value": 105.0, "step": 1},
        {"card": {"metric": "kid"}, "value": 0.08, "step": 1},
    ]
    (short / "manifest.json").write_text(json.dumps(man))
    said = zoo.remake_check("tiny-gan", short)
    assert "fid: 105 re-made vs 100 (+5, within the tolerance of 10)" in said
    assert "kid: 0.08 re-made vs 0.05 (+0.03, OUTSIDE the tolerance of 0.01)" in said


@pytest.mark.zoo
def test_the_shipped_index_is_valid_and_every_file_matches_it():
    shipped = Path(zoo.registry.__file__).parent
    assert json.loads((shipped / "index.json").read_text())["format"] == "pixelsmith-zoo/1"
    assert all(ok for _, ok, _ in zoo.verify(shipped)), zoo.verify(shipped)
