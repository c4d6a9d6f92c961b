"""The served backend's choice: timed with progress lines, remembered by its key (payload hash,
CPU, threads, versions, candidates), built from the kept ONNX export on a later start, and timed
again when the key changes, the cache is unreadable or the remembered backend no longer builds."""

from __future__ import annotations

import json

import pytest
import torch

from pixelsmith.deploy import backends, choice
from pixelsmith.deploy.choice import choose_backend

QUICK = ("eager", "channels_last")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Each test remembers into a folder of its own, not the user's cache."""
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def gan(tiny_gan):
    m = tiny_gan((1, 16, 16))
    m.add_ema_copies()
    m.manifest = {"payload_sha256": "5eed" * 16}
    return m.eval()


@pytest.fixture
def timings(monkeypatch):
    """How many times the ladder was timed."""
    calls = []
    real = backends.latency

    def latency(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("backends"))
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "latency", latency)
    return calls


def test_timing_shows_a_line_per_backend_and_the_choice(gan, timings, _cache):
    lines = []
    got = choose_backend(gan, candidates=QUICK, log=lines.append)
    assert len(timings) == 1 and not got.remembered
    assert lines[0].startswith("timing eager, channels_last at batch 1")
    assert any(line.strip().startswith("eager: p50 ") for line in lines)
    assert any(
        line.strip().startswith("channels_last: p50 ") and "agrees with eager" in line
        for line in lines
    )
    assert any(line.startswith(f"chose {got.name}") for line in lines)
    assert got.name in QUICK and got.description.startswith(got.name)
    assert (got.backend is None) == (got.name == "eager")
    saved = json.loads((_cache / "backends.json").read_text())
    (entry,) = saved["entries"].values()
    assert entry["backend"] == got.name and entry["key"]["payload_sha256"] == "5eed" * 16


def test_the_same_key_is_not_timed_again_and_gives_the_same_backend(gan, timings, monkeypatch):
    with monkeypatch.context() as m:  # the second call must not ask the ladder again
        m.setattr(backends, "fastest", lambda rows, by: "channels_last")
        first = choose_backend(gan, candidates=QUICK)
    lines = []
    second = choose_backend(gan, candidates=QUICK, log=lines.append)
    assert len(timings) == 1 and first.name == second.name == "channels_last"
    assert second.remembered and "remembered" in second.description
    assert not any("timing" in line for line in lines)
    feeds = {"z": torch.randn(3, 8)}
    with torch.inference_mode():
        want = backends.exportable(gan).module(**feeds)
    assert torch.allclose(second.backend.run(feeds), want, atol=1e-5)


def test_retime_times_again_and_a_changed_key_is_timed_anew(gan, timings):
    choose_backend(gan, candidates=QUICK)
    choose_backend(gan, candidates=QUICK, retime=True)
    assert len(timings) == 2
    choose_backend(gan, candidates=("eager",))  # other candidates
    assert len(timings) == 3
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads != 1 else 2)  # another thread count
    try:
        choose_backend(gan, candidates=QUICK)
    finally:
        torch.set_num_threads(threads)
    assert len(timings) == 4
    choose_backend(gan, candidates=QUICK)
    choose_backend(gan, candidates=("eager",))
    assert len(timings) == 4  # each key was remembered side by side
    gan.manifest = {"payload_sha256": "0ther" * 8}  # other weights
    choose_backend(gan, candidates=QUICK)
    assert len(timings) == 5


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "\xff\xfe\x00",
        "[]",
        '{"format": 1, "entries": []}',
        '{"format": 99, "entries": {}}',
    ],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(gan, timings, _cache, text):
    _cache.mkdir(parents=True)
    (_cache / "backends.json").write_bytes(text.encode("latin-1"))
    lines = []
    got = choose_backend(gan, candidates=QUICK, log=lines.append)
    assert len(timings) == 1 and got.name in QUICK
    assert any("ignoring" in line for line in lines)
    assert json.loads((_cache / "backends.json").read_text())["format"] == choice.FORMAT
    assert choose_backend(gan, candidates=QUICK).remembered and len(timings) == 1


def test_a_remembered_entry_for_another_key_or_backend_is_not_taken(gan, timings, _cache):
    choose_backend(gan, candidates=QUICK)
    path = _cache / "backends.json"
    saved = json.loads(path.read_text())
    (entry,) = saved["entries"].values()
    entry["backend"] = "tensorrt"  # a backend this version does not know
    path.write_text(json.dumps(saved))
    assert not choose_backend(gan, candidates=QUICK).remembered and len(timings) == 2


def test_a_model_without_a_payload_hash_is_timed_every_time(gan, timings, _cache):
    gan.manifest = {}
    lines = []
    for _ in range(2):
        assert not choose_backend(gan, candidates=QUICK, log=lines.append).remembered
    assert len(timings) == 2 and "no payload hash" in lines[0]
    assert not (_cache / "backends.json").exists()
    gan.manifest = {"payload_sha256": "5eed" * 16}
    choose_backend(gan, candidates=QUICK, cache=False)
    choose_backend(gan, candidates=QUICK, cache=False)
    assert len(timings) == 4 and not (_cache / "backends.json").exists()


def test_a_remembered_backend_that_no_longer_builds_is_timed_again(gan, timings, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(backends, "fastest", lambda rows, by: "channels_last")
        assert choose_backend(gan, candidates=QUICK).name == "channels_last"
    real = backends.build

    def build(name, model, workdir, onnx_file=None):
        if name == "channels_last":
            raise RuntimeError("no kernel for this")
        return real(name, model, workdir, onnx_file)

    monkeypatch.setattr(backends, "build", build)
    lines = []
    got = choose_backend(gan, candidates=QUICK, log=lines.append)
    assert len(timings) == 2 and got.name == "eager" and got.backend is None
    assert any("no longer" in line or "does not serve" in line for line in lines)
    assert any("channels_last: not available" in line for line in lines)


def test_a_named_backend_is_built_without_timing_and_unknown_names_are_refused(gan, timings):
    from pixelsmith.errors import UserError

    got = choose_backend(gan, "channels_last")
    assert got.name == "channels_last" and not timings
    assert choose_backend(gan, "eager").backend is None
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend(gan, "tpu")
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend(gan, candidates=("eager", "tpu"))


def test_onnxruntime_is_exported_once_kept_and_loaded_on_the_next_start(
    gan, timings, monkeypatch, _cache
):
    pytest.importorskip("onnxruntime", reason="the deploy extra (onnxruntime) is not installed")
    exports = []
    real = backends.export_onnx
    monkeypatch.setattr(backends, "export_onnx", lambda *a, **k: exports.append(1) or real(*a, **k))
    monkeypatch.setattr(backends, "fastest", lambda rows, by: "onnxruntime")
    first = choose_backend(gan, candidates=("eager", "onnxruntime"))
    assert first.name == "onnxruntime" and len(exports) == 1  # the ladder's export is reused
    (kept,) = (_cache / "onnx").glob("*.onnx")
    second = choose_backend(gan, candidates=("eager", "onnxruntime"))
    assert second.remembered and len(exports) == 1 and len(timings) == 1
    feeds = {"z": torch.randn(2, 8)}
    with torch.inference_mode():
        want = backends.exportable(gan).module(**feeds)
    assert torch.allclose(second.backend.run(feeds), want, atol=1e-4)
    kept.write_bytes(b"not an onnx file")  # a corrupt kept export: exported again, not fatal
    lines = []
    third = choose_backend(gan, candidates=("eager", "onnxruntime"), log=lines.append)
    assert third.name == "onnxruntime" and len(exports) == 2 and len(timings) == 1
    assert any("exporting again" in line for line in lines)
    assert kept.stat().st_size > 1000


def test_serve_prints_the_progress_and_remembers_across_starts(monkeypatch, capsys, timings):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from pixelsmith.cli.main import main

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    monkeypatch.setattr(backends, "BACKENDS", QUICK)  # the default ladder, kept quick here
    assert main(["serve", "zoo:fmnist-gan"]) == 0
    # The model's lines, in order (a first start in the session also says it made its key).
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fmnist-gan:")]
    assert out[0] == (
        "fmnist-gan: timing eager, channels_last at batch 1 (once; the choice is remembered)"
    )
    assert any(line.startswith("fmnist-gan:   channels_last: p50 ") for line in out)
    (first,) = [line for line in out if line.startswith("fmnist-gan: serving through ")]
    assert main(["serve", "zoo:fmnist-gan"]) == 0
    out = capsys.readouterr().out.splitlines()
    (second,) = [line for line in out if line.startswith("fmnist-gan: serving through ")]
    assert second.endswith("(remembered from an earlier start; --retime to time again)")
    assert second.split()[3] == first.split()[3] and len(timings) == 1
    assert main(["serve", "zoo:fmnist-gan", "--retime"]) == 0
    assert "timing" in capsys.readouterr().out and len(timings) == 2 and len(started) == 3
