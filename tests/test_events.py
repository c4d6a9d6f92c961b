"""TensorBoard event files, read back with TensorBoard's own reader: they hold the records of
stats.jsonl and the grids; a resume purges what came after its checkpoint; they can be off."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorboard", reason="event files need the tensorboard extra")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.loop import Trainer, train  # noqa: E402


def _read(run):
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _stats(run):
    return [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]


def test_events_mirror_stats_and_grids(tmp_path, tiny):
    over = [*tiny, "train.steps=4", "train.log_every=1", "train.sample_every=2",
            "train.lr_schedule=cosine"]  # fmt: skip
    run = train(build_config("dcgan", overrides=over), tmp_path, progress=False)
    acc = _read(run)
    stats = _stats(run)
    tags = set(acc.Tags()["scalars"])
    assert {"loss/G", "loss/D", "run/lr_factor", "run/img_per_s"} <= tags
    for tag, key in (("loss/G", "G"), ("loss/D", "D"), ("run/lr_factor", "lr_factor")):
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(r["step"], r[key]) for r in stats if key in r]
        assert [s for s, _ in got] == [s for s, _ in want] == [1, 2, 3, 4]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)
    images = acc.Images("samples")
    assert [e.step for e in images] == [2, 4, 4]  # every 2 steps, then the final grid
    assert images[0].width > 16 and images[0].height > 16  # the whole grid, not one image


def test_a_resume_purges_events_after_its_checkpoint(tmp_path, tiny):
    cfg = build_config("dcgan", overrides=[*tiny, "train.steps=4", "train.log_every=1"])
    first = Trainer(cfg, tmp_path, progress=False)
    first.folder.events.record({"step": 0, "G": 0.0})
    while first.state.step < 2:
        first.step()
    first.save()
    for step in (3, 4, 5):  # logged after the checkpoint, then lost with the process
        first.folder.events.record({"step": step, "G": 99.0})
    first.folder.events.close()
    run = train(cfg, resume=first.run_dir, progress=False)
    got = [(e.step, e.value) for e in _read(run).Scalars("loss/G")]
    assert [s for s, _ in got] == [0, 3, 4]
    assert 99.0 not in [v for _, v in got]


def test_a_trainer_never_trained_opens_no_writer(tmp_path, tiny):
    t = Trainer(build_config("dcgan", overrides=[*tiny, "train.steps=1"]), tmp_path, progress=False)
    assert t.folder.events is not None and not t.folder.events.is_open
    t.folder.events.record({"step": 1, "G": 0.5})
    assert t.folder.events.is_open
    t.folder.events.close()
    assert not t.folder.events.is_open
    assert [e.step for e in _read(t.run_dir).Scalars("loss/G")] == [1]


def test_event_files_can_be_turned_off(tmp_path, tiny):
    over = [*tiny, "train.steps=1", "train.tensorboard=false"]
    run = train(build_config("dcgan", overrides=over), tmp_path, progress=False)
    assert not (run / "tensorboard").exists()
