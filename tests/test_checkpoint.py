from __future__ import annotations

import errno

import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.train import checkpoint as tck
from pixelsmith.utils import checkpoint_file as ck


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"a/w": torch.randn(3, 4, generator=g), "b": torch.arange(5), "c": torch.zeros(0)}


def test_roundtrip_and_manifest(tmp_path):
    p = ck.save_checkpoint(
        tmp_path / "ckpt-000001.safetensors", _tensors(), {"family": "gan", "x": [1, 2]}
    )
    t, man = ck.load_checkpoint(p)
    for k, v in _tensors().items():
        assert torch.equal(t[k], v)
    assert man["family"] == "gan" and man["x"] == [1, 2] and man["format"] == ck.FORMAT
    assert ck.read_manifest(p)["family"] == "gan"


def test_truncated_and_corrupt_are_user_errors(tmp_path):
    p = ck.save_checkpoint(tmp_path / "ckpt-000001.safetensors", _tensors(), {"family": "gan"})
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) - 10])
    with pytest.raises(UserError, match="trunc.safetensors"):
        ck.load_checkpoint(tmp_path / "trunc.safetensors")
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="checksum"):
        ck.load_checkpoint(tmp_path / "flip.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk"):
        ck.load_checkpoint(tmp_path / "junk.safetensors")


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    p = ck.save_checkpoint(tmp_path / "ckpt.safetensors", _tensors(), {"family": "gan", "v": 1})
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and ".tmp-" in str(path) else f

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(UserError, match="disk is full"):
        ck.save_checkpoint(p, {"a/w": torch.ones(2)}, {"family": "gan", "v": 2})
    monkeypatch.undo()
    t, man = ck.load_checkpoint(p)
    assert man["v"] == 1 and torch.equal(t["a/w"], _tensors()["a/w"])
    assert [q.name for q in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temp file left


def test_prune_keeps_newest(tmp_path):
    for s in (5, 10, 15, 20):
        ck.save_checkpoint(tmp_path / f"ckpt-{s:06d}.safetensors", {"x": torch.ones(1)}, {})
    ck.prune(tmp_path, 2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [
        "ckpt-000015.safetensors",
        "ckpt-000020.safetensors",
    ]
    assert ck.resolve_checkpoint(tmp_path).name == "ckpt-000020.safetensors"


def test_optimizer_state_roundtrip():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    t, rest = tck.optimizer_to_flat(opt, "opt/x")
    opt2 = torch.optim.Adam(net.parameters(), 1e-3)
    tck.optimizer_from_flat(opt2, t, "opt/x", rest)
    a, b = opt.state_dict(), opt2.state_dict()
    for i in a["state"]:
        for k in a["state"][i]:
            assert torch.equal(a["state"][i][k], b["state"][i][k])
    assert a["param_groups"] == b["param_groups"]
