"""Encryption at rest: key files, the file format read back by cryptography's AESGCM directly,
any changed byte refused, and training runs whose checkpoints are encrypted yet train, resume and
sample exactly as plain ones do."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

pytest.importorskip("cryptography", reason="encryption needs the privacy extra (cryptography)")

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import pixelsmith  # noqa: E402
from pixelsmith.cli.main import main  # noqa: E402
from pixelsmith.errors import UserError  # noqa: E402
from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.loop import train  # noqa: E402
from pixelsmith.utils import checkpoint_file as ck  # noqa: E402
from pixelsmith.utils import encryption as enc  # noqa: E402


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    """A fresh key file, made by the CLI, and the environment cleared of any key."""
    monkeypatch.delenv(enc.ENV, raising=False)
    path = tmp_path / "keys" / "run.key"
    assert main(["keys", "new", "encryption", "-o", str(path)]) == 0
    return path


def test_key_files_are_private_and_checked(key_file, tmp_path):
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = enc.load_encryption_key(key_file)
    record = json.loads(key_file.read_text())
    assert len(key.secret) == 32 and record["key_id"] == key.key_id
    assert main(["keys", "new", "encryption", "-o", str(key_file)]) == 2  # no overwrite
    assert main(["keys", "new", "watermark", "-o", str(tmp_path / "wm.json")]) == 0
    with pytest.raises(UserError, match="not an encryption key"):
        enc.load_encryption_key(tmp_path / "wm.json")
    record["secret"] = bytes(32).hex()
    (tmp_path / "bad.key").write_text(json.dumps(record))
    with pytest.raises(UserError, match="damaged"):
        enc.load_encryption_key(tmp_path / "bad.key")


def test_the_format_is_aes_gcm_as_documented(key_file):
    key = enc.load_encryption_key(key_file)
    data = os.urandom(1000)
    blob = enc.encrypt(data, key)
    head = enc.MAGIC + key.key_id.encode()
    assert blob.startswith(head) and len(blob) == len(head) + 12 + len(data) + 16
    # read back by cryptography itself from the documented layout: an independent reader
    nonce = blob[len(head) : len(head) + 12]
    assert AESGCM(key.secret).decrypt(nonce, blob[len(head) + 12 :], head) == data
    assert enc.decrypt(blob, "x", key) == data
    assert enc.encrypt(data, key) != blob  # a fresh nonce each time


def test_any_changed_byte_is_refused(key_file):
    key = enc.load_encryption_key(key_file)
    blob = enc.encrypt(b"weights" * 50, key)
    for i in (len(enc.MAGIC) + 3, len(enc.MAGIC) + 20, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(UserError, match="changed or damaged|not with key|not an encrypted"):
            enc.decrypt(bytes(bad), "f", key)
    other = enc.new_encryption_key()
    with pytest.raises(UserError, match=f"encrypted with key {key.key_id}"):
        enc.decrypt(blob, "f", other)
    with pytest.raises(UserError, match=enc.ENV):
        enc.decrypt(blob, "f")


def test_an_encrypted_run_trains_resumes_and_samples_as_a_plain_one(
    tmp_path, tiny, key_file, monkeypatch, capsys
):
    cfg = build_config("dcgan", overrides=tiny + ["train.steps=6", "train.checkpoint_every=3"])
    plain = train(cfg, tmp_path / "plain", progress=False)
    monkeypatch.setenv(enc.ENV, str(key_file))
    half = build_config("dcgan", overrides=tiny + ["train.steps=3"])
    run = train(half, tmp_path / "secret", progress=False)
    run = train(cfg, resume=run, progress=False)
    ckpt = ck.resolve_checkpoint(run)
    raw = ckpt.read_bytes()
    assert raw.startswith(enc.MAGIC) and b"pixelsmith-checkpoint" not in raw
    a, _ = ck.load_checkpoint(ck.resolve_checkpoint(plain))
    b, _ = ck.load_checkpoint(ckpt)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = pixelsmith.load(str(run)).sample(4, seed=1)
    assert x.shape[0] == 4
    # without the key, and with a flipped byte, one line each before any work
    monkeypatch.delenv(enc.ENV)
    assert main(["sample", str(run), "-n", "2", "-o", str(tmp_path / "s.png")]) == 2
    assert enc.ENV in capsys.readouterr().err
    bad = bytearray(raw)
    bad[len(bad) // 3] ^= 0x10
    ckpt.write_bytes(bytes(bad))
    monkeypatch.setenv(enc.ENV, str(key_file))
    assert main(["sample", str(run), "-n", "2", "-o", str(tmp_path / "s.png")]) == 2
    assert "changed or damaged" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_train_refuses_a_bad_key_before_any_run_folder(tmp_path, tiny, capsys):
    (tmp_path / "k.key").write_text('{"kind": "pixelsmith-watermark-key"}')
    argv = ["train", "dcgan", "--encrypt", str(tmp_path / "k.key"), "--out", str(tmp_path / "r")]
    assert main([*argv, "--steps", "1", *[a for t in tiny for a in ("--set", t)]]) == 2
    assert "not an encryption key" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_keys_rotate_reencrypts_a_run(tmp_path, tiny, key_file, monkeypatch, capsys):
    monkeypatch.setenv(enc.ENV, str(key_file))
    run = train(build_config("dcgan", overrides=tiny + ["train.steps=2"]), tmp_path / "r",
                progress=False)  # fmt: skip
    before = {p: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    new = tmp_path / "new.key"
    assert main(["keys", "new", "encryption", "-o", str(new)]) == 0
    wrong = tmp_path / "wrong.key"
    assert main(["keys", "new", "encryption", "-o", str(wrong)]) == 0
    assert main(["keys", "rotate", str(run), "--old", str(wrong), "--new", str(new)]) == 2
    assert {p: p.read_bytes() for p in before} == before  # refused before any file changed
    assert main(["keys", "rotate", str(run), "--old", str(key_file), "--new", str(new)]) == 0
    rotated = sorted(p for p in run.rglob("*") if p.is_file() and enc.is_encrypted(p.read_bytes()))
    assert f"re-encrypted {len(rotated)} file(s)" in capsys.readouterr().out
    new_id = enc.load_encryption_key(new).key_id
    assert all(p.read_bytes()[len(enc.MAGIC) :].startswith(new_id.encode()) for p in before)
    monkeypatch.setenv(enc.ENV, str(new))
    assert pixelsmith.load(str(run)).sample(2, seed=0).shape[0] == 2
    monkeypatch.setenv(enc.ENV, str(key_file))
    with pytest.raises(UserError, match=f"encrypted with key {new_id}"):
        pixelsmith.load(str(run))


PLAIN_IN_AN_ENCRYPTED_RUN = {"config.yaml", "manifest.json"}


def test_an_encrypted_run_writes_nothing_of_its_data_in_the_clear(
    tmp_path, tiny, key_file, monkeypatch, capsys
):
    monkeypatch.setenv(enc.ENV, str(key_file))
    overrides = tiny + ["train.steps=4", "train.log_every=1", "train.checkpoint_every=2"]
    run = train(build_config("dcgan", overrides=overrides), tmp_path / "r", progress=False)
    files = [p for p in run.rglob("*") if p.is_file()]
    secret = [p for p in files if p.name not in PLAIN_IN_AN_ENCRYPTED_RUN]
    assert {"stats.jsonl", "losses.png", "report.md", "grid-final.png"} <= {p.name for p in secret}
    for p in secret:
        raw = p.read_bytes()
        assert raw.startswith(enc.MAGIC), p
        assert b"PNG" not in raw[:64] and b'"step"' not in raw, p
    # the run's own reader decrypts in memory; `keys decrypt` makes a plain copy on request
    from pixelsmith.train.rundir import RunFolder

    assert [r["step"] for r in RunFolder(run).read_stats()] == [1, 2, 3, 4]
    out = tmp_path / "grid.png"
    grid = run / "grids" / "grid-final.png"
    assert main(["keys", "decrypt", str(grid), "-o", str(out), "--key", str(key_file)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert pixelsmith.imageio.read_image(grid).size == pixelsmith.imageio.read_image(out).size
    # a dropped stats record is refused like a changed byte: the file is authenticated whole
    stats = run / "stats.jsonl"
    stats.write_bytes(stats.read_bytes()[:-1])
    with pytest.raises(UserError, match="changed or damaged"):
        RunFolder(run).read_stats()


def _photo_folder(root, n=6):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n // 2):
            arr = torch.randint(0, 256, (20, 24, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_an_encrypted_data_set_reads_like_the_plain_one_and_is_never_cached(
    tmp_path, key_file, monkeypatch, capsys
):
    from pixelsmith.data.sources import load_images
    from pixelsmith.metrics.evaluate import reference_stats
    from pixelsmith.metrics.features import feature_net

    plain = _photo_folder(tmp_path / "plain")
    secret = tmp_path / "secret"
    assert main(["keys", "encrypt", str(plain), "-o", str(secret), "--key", str(key_file)]) == 0
    assert "encrypted 6 file(s)" in capsys.readouterr().out
    assert all(p.read_bytes().startswith(enc.MAGIC) for p in secret.rglob("*.png"))
    with pytest.raises(UserError, match=enc.ENV):
        load_images(secret, size=(16, 16))
    monkeypatch.setenv(enc.ENV, str(key_file))
    a, b = load_images(plain, size=(16, 16)), load_images(secret, size=(16, 16))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert b.encrypted and not a.encrypted
    # features of encrypted images never reach the cache; a plain set's do
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path / "cache"))
    for source in (secret, plain):
        reference_stats(feature_net("fmnist"), str(source), "train", channels=1, size=(28, 28))
    cached = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(cached) == 1
    # one changed byte in one image stops the load in one line
    victim = secret / "b" / "1.png"
    bad = bytearray(victim.read_bytes())
    bad[-5] ^= 0x01
    victim.write_bytes(bytes(bad))
    with pytest.raises(UserError, match="1.png fails authentication"):
        load_images(secret, size=(16, 16))
