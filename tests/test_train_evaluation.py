"""Evaluation inside training: the family's own metric by default, refused before a run folder
exists when it cannot work, written after that step's checkpoint, and never fatal."""

from __future__ import annotations

import json

import pytest

from pixelsmith.errors import UserError
from pixelsmith.models import families
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.utils import checkpoint_file as ck

# A CycleGAN small enough for a few steps a second, on two shape classes.
TINY_CYCLE = [
    "data.source=shapes",
    "data.size=16",
    "data.limit=16",
    "train.batch=4",
    "model.g_channels=4",
    "model.g_blocks=1",
    "model.d_channels=4",
    "model.pool_size=4",
    "model.bank=4",
    "train.threads=1",
    "train.grid_size=4",
]


def _scores(run):
    return json.loads((run / "manifest.json").read_text()).get("scores", [])


def test_cyclegan_scores_translation_while_training(tmp_path):
    # The case: `train cyclegan --steps 4 --set train.eval_every=2` stopped at step 2.
    cfg = build_config("cyclegan", overrides=[*TINY_CYCLE, "train.steps=4", "train.eval_every=2"])
    run = train(cfg, tmp_path, progress=False)
    assert ck.read_manifest(ck.resolve_checkpoint(run))["step"] == 4
    scored = {(s["step"], s["card"]["metric"]) for s in _scores(run)}
    assert {(2, "translation/aba_psnr"), (4, "translation/bab_psnr")} <= scored
    evals = [
        r
        for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines())
        if "eval/translation/aba_psnr" in r
    ]
    assert [r["step"] for r in evals] == [2, 4]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["train.eval_metrics=fid", "train.eval_every=1"], "does not draw images"),
        (["train.eval_metrics=nll", "train.eval_every=1"], "unknown metric"),
        (["train.eval_metrics=nll", "train.eval_at_end=true"], "unknown metric"),
    ],
)
def test_settings_an_evaluation_cannot_honour_are_refused_before_a_run_folder(
    tmp_path, extra, needle
):
    cfg = build_config("cyclegan", overrides=[*TINY_CYCLE, "train.steps=2", *extra])
    with pytest.raises(UserError, match=needle):
        Trainer(cfg, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "extra,needle",
    [
        ([], "no shipped feature network for 'shapes'"),
        (["train.eval_features=/nonexistent.pt"], "unknown feature network"),
        (["train.eval_features=fmnist", "train.eval_metrics=is,kid"], None),
        pytest.param(
            ["train.eval_features=inception", "train.eval_metrics=is"],
            "no logits",
            marks=pytest.mark.inception,
        ),
    ],
)
def test_feature_networks_are_checked_before_a_run_folder(tmp_path, tiny, extra, needle):
    cfg = build_config("dcgan", overrides=[*tiny, "train.steps=2", "train.eval_every=1", *extra])
    if needle is None:  # the shipped classifier has logits: IS is fine
        Trainer(cfg, tmp_path / "runs", progress=False)
        return
    with pytest.raises(UserError, match=needle):
        Trainer(cfg, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_an_evaluation_runs_after_its_checkpoint_and_a_failure_does_not_stop_training(
    tmp_path, monkeypatch
):
    import pixelsmith.metrics.evaluate as ev

    seen = []

    def failing(model, *args, **kwargs):
        run = next(tmp_path.iterdir())
        seen.append([p.name for p in ck.list_checkpoints(run / "checkpoints")])
        raise RuntimeError("feature network fell over")

    monkeypatch.setattr(ev, "evaluate_model", failing)
    cfg = build_config(
        "cyclegan",
        overrides=[
            *TINY_CYCLE,
            "train.steps=4",
            "train.eval_every=2",
            "train.checkpoint_every=100",
        ],
    )
    with pytest.warns(UserWarning, match="evaluation at step 2 failed .*fell over.*goes on"):
        run = train(cfg, tmp_path, progress=False)
    # Each evaluation found its own step's checkpoint on disk; training reached its budget.
    assert seen[0] == ["ckpt-000002.safetensors"]
    assert "ckpt-000004.safetensors" in seen[1]
    assert ck.read_manifest(ck.resolve_checkpoint(run))["step"] == 4


@pytest.mark.parametrize("name", sorted(families()))
def test_the_divergence_message_names_settings_the_family_has(tmp_path, name, monkeypatch):
    from pixelsmith import config as cfglib

    overrides = ["data.source=shapes", "data.size=16", "data.limit=16", "train.batch=8"]
    if name == "cyclegan":
        overrides = TINY_CYCLE
    if name == "distill":
        overrides = [*overrides, "model.teacher=untrained"]
    t = Trainer(build_config(name, overrides=[*overrides, "train.steps=3"]), tmp_path)
    monkeypatch.setattr(t.family, "train_step", lambda batch, ctx: {"loss": float("nan")})
    with pytest.raises(UserError) as e:
        t.run()
    msg = str(e.value)
    named = [w.strip("(),") for w in msg.split() if w.startswith(("model.", "(model."))]
    keys = cfglib.valid_keys(t.cfg)
    assert named and all(k.split("=")[0] in keys for k in named), msg
    assert "diverged at step 1" in msg and "--resume" in msg
