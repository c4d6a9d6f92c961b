"""Learning-rate schedules: the factor's closed forms, a run that follows them, exact resume,
a changed rate on resume, and the card that says which schedule trained the model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.metrics.evaluate import evaluate_model
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.train.schedule import lr_factor
from pixelsmith.utils import checkpoint_file as ck


def test_the_factors_closed_forms():
    assert lr_factor(0.3) == 1.0
    assert lr_factor(0.0, "cosine") == 1.0 and lr_factor(1.0, "cosine") == pytest.approx(0.0)
    assert lr_factor(0.5, "cosine", floor=0.2) == pytest.approx(0.6)
    assert lr_factor(0.25, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_factor(0.05, "constant", warmup=0.1) == pytest.approx(0.5)
    # after a warm-up of 0.2 the cosine runs over the remaining 0.8
    assert lr_factor(0.6, "cosine", warmup=0.2) == pytest.approx(0.5)
    steps = [lr_factor(f, "step", milestones=(0.5, 0.75), gamma=0.1) for f in (0.4, 0.5, 0.8)]
    assert steps == pytest.approx([1.0, 0.1, 0.01])


def _cfg(tiny, *extra):
    return build_config("dcgan", overrides=[*tiny, "train.log_every=1", *extra])


def test_a_run_follows_its_schedule(tmp_path, tiny):
    sched = ["train.lr_schedule=cosine", "train.warmup=0.25", "train.lr_floor=0.1"]
    full = train(_cfg(tiny, "train.steps=8", *sched), tmp_path / "a", progress=False)
    stats = [json.loads(x) for x in (full / "stats.jsonl").read_text().splitlines()]
    want = [lr_factor(s / 8, "cosine", 0.25, 0.1) for s in range(8)]
    assert [r["lr_factor"] for r in stats] == pytest.approx(want, abs=1e-4)  # stats: 5 digits
    # a plain run's step is not touched: no lr_factor in its stats
    plain = train(_cfg(tiny, "train.steps=2"), tmp_path / "c", progress=False)
    assert "lr_factor" not in (plain / "stats.jsonl").read_text()


def test_resume_continues_on_the_same_curve_bit_for_bit(tmp_path, tiny):
    sched = ["train.lr_schedule=step", "train.lr_milestones=[0.5]", "train.lr_gamma=0.5"]
    full = train(_cfg(tiny, "train.steps=6", *sched), tmp_path / "a", progress=False)
    cfg = _cfg(tiny, "train.steps=6", "train.checkpoint_every=3", *sched)
    trainer = Trainer(cfg, tmp_path / "b", progress=False)
    while trainer.state.step < 3:
        trainer.step()
    trainer.save()
    resumed = train(cfg, resume=trainer.run_dir, progress=False)
    a, _ = ck.load_checkpoint(ck.resolve_checkpoint(full))
    b, _ = ck.load_checkpoint(ck.resolve_checkpoint(resumed))
    for k in a:
        if k.startswith(("net/", "opt/")):
            assert torch.equal(a[k], b[k]), k


def test_the_card_names_the_schedule_and_bad_settings_are_refused(tmp_path, tiny):
    over = ["data.source=shapes", "data.limit=40", "train.batch=10", "train.steps=2",
            "train.eval_at_end=false", "train.lr_schedule=cosine", "train.warmup=0.1"]  # fmt: skip
    run = train(build_config("classifier", overrides=over), tmp_path, progress=False)
    from pixelsmith.generate import load_model

    scores = evaluate_model(load_model(run), "auto")
    assert scores and all(s.card.params["lr_schedule"] == "cosine, warm-up 0.1" for s in scores)
    for bad in ("train.lr_schedule=linear", "train.warmup=1", "train.lr_milestones=[1.5]"):
        with pytest.raises(UserError, match="train."):
            build_config("dcgan", overrides=[bad])


def test_a_changed_rate_on_resume_is_scheduled_from_the_new_rate(tmp_path, tiny):
    sched = ["train.lr_schedule=cosine"]
    half = train(_cfg(tiny, "train.steps=2", *sched), tmp_path, progress=False)
    trainer = Trainer(_cfg(tiny, "train.steps=4", "model.lr_g=1e-6", *sched), resume=half,
                      progress=False)  # fmt: skip
    trainer.step()
    factor = lr_factor(2 / 4, "cosine")
    assert trainer.family.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-6 * factor)
