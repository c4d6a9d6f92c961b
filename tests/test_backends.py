"""The backend ladder: every backend agrees with eager, the table and the pick are sound, a
backend that breaks is reported instead of stopping the run."""

from __future__ import annotations

import pytest
import torch
from conftest import make_gan

from pixelsmith.cli.main import main
from pixelsmith.deploy import backends
from pixelsmith.errors import UserError

pytest.importorskip("onnxruntime", reason="the deploy extra (onnxruntime) is not installed")


@pytest.fixture(scope="module")
def gan():
    m = make_gan((1, 16, 16), 3)
    m.add_ema_copies()
    return m.eval()


def test_each_backend_agrees_with_eager_and_is_timed(gan, tmp_path):
    seen = []
    names = ["eager", "channels_last", "onnxruntime"]
    rows = backends.latency(gan, names, 5, 8, progress=seen.append, workdir=tmp_path)
    assert [r.backend for r in rows] == names and seen == names
    for r in rows:
        assert r.agrees and r.max_abs_diff < 1e-4, r
        assert 0 < r.p50_ms <= r.p99_ms and r.images_per_s > 0 and r.first_call_s >= 0
        assert len(r.samples_ms) == 5
    assert rows[0].max_abs_diff == 0.0
    assert backends.fastest(rows) in {"eager", "channels_last", "onnxruntime"}
    text = backends.table(rows, 8)
    assert text.count("\n") == 4 and "| onnxruntime |" in text
    kept = backends.build(
        "onnxruntime", gan, tmp_path / "unused", onnx_file=tmp_path / "model.onnx"
    )
    assert backends.max_diff(kept, gan, n=4) < 1e-4 and not (tmp_path / "unused").exists()
    wrong = backends.Backend("wrong", lambda feeds: kept.run(feeds) + 0.25, 0.0)
    assert backends.max_diff(wrong, gan) == pytest.approx(0.25, abs=1e-4)


def test_a_broken_backend_is_reported_and_never_picked(gan, monkeypatch):
    real = backends.build

    def build(name, model, workdir):
        if name == "channels_last":
            raise RuntimeError("no kernel for this")
        b = real(name, model, workdir)
        if name == "onnxruntime":  # a backend that answers wrongly
            run = b.run
            b.run = lambda feeds: run(feeds) + 0.5
        return b

    monkeypatch.setattr(backends, "build", build)
    rows = backends.latency(gan, ["eager", "channels_last", "onnxruntime"], rounds=3, batch=4)
    broken, wrong = rows[1], rows[2]
    assert broken.p50_ms is None and "no kernel" in broken.note
    assert not wrong.agrees and wrong.max_abs_diff == pytest.approx(0.5, abs=1e-4)
    assert backends.fastest(rows) == "eager" and backends.fastest(rows, "p50_ms") == "eager"
    assert "no kernel" in backends.table(rows, 4) and "NO" in backends.table(rows, 4)


def test_bad_arguments_are_one_line_errors(gan, capsys):
    with pytest.raises(UserError, match="rounds"):
        backends.latency(gan, ["eager"], rounds=1)
    code = main(["bench", "latency", "zoo:fmnist-gan", "--backends", "eager,tensorrt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tensorrt" in err[0]


def test_a_restoration_network_is_timed_at_the_size_asked(tmp_path):
    from pixelsmith.models.restore import Restore, RestoreConfig

    torch.manual_seed(0)
    sr = Restore(RestoreConfig(task="sr", width=8, blocks=1), (3, 16, 16))
    sr.add_ema_copies()
    seen = []
    real = backends.onnx_runner

    def spy(path):
        run = real(path)
        return lambda feeds: seen.append(tuple(feeds["inputs"].shape)) or run(feeds)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backends, "onnx_runner", spy)
        rows = backends.latency(sr, ["eager", "onnxruntime"], 2, 1, size=40, workdir=tmp_path)
    assert all(r.agrees for r in rows), rows
    assert seen and set(seen) == {(1, 3, 40, 40)}
