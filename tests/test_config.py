from __future__ import annotations

import pytest

from pixelsmith.config import apply_overrides, valid_keys, yaml_load
from pixelsmith.errors import UserError
from pixelsmith.train.config import build_config


def test_presets_resolve_with_their_settings():
    assert build_config("dcgan").model.loss == "ns"
    w = build_config("wgan-gp")
    assert (w.model.loss, w.model.n_critic, w.model.betas) == ("wgan-gp", 5, (0.0, 0.9))
    assert build_config("cgan").model.conditional is True


def test_overrides_are_typed():
    cfg = build_config(
        "dcgan",
        overrides=[
            "train.batch=32",
            "model.betas=[0.1, 0.2]",
            "data.augment.flip_p=0.5",
            "train.minutes=1.5",
            "model.lr_g=5e-4",
        ],
    )
    assert cfg.train.batch == 32 and cfg.model.betas == (0.1, 0.2)
    assert cfg.data.augment.flip_p == 0.5 and cfg.train.minutes == 1.5
    assert cfg.model.lr_g == 5e-4


def test_unknown_key_lists_valid_keys():
    with pytest.raises(UserError) as e:
        build_config("dcgan", overrides=["train.bathc=3"])
    assert "train.bathc" in str(e.value) and "train.batch" in str(e.value)


@pytest.mark.parametrize(
    "item,needle",
    [
        ("train.batch=abc", "expects an integer"),
        ("train.batch=0", "positive"),
        ("train.batch=-4", "positive"),
        ("data.size=0", "positive"),
        ("model.loss=foo", "model.loss"),
        ("model.z_dim=2.5", "expects an integer"),
        ("data.augment.flip_p=2", "flip_p"),
        ("nokeyvalue", "key=value"),
    ],
)
def test_bad_values_are_one_clear_error(item, needle):
    with pytest.raises(UserError, match=needle):
        build_config("dcgan", overrides=[item])


def test_unknown_model_names_choices():
    with pytest.raises(UserError, match="dcgan"):
        build_config("dcgann")


def test_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  batch: 8\nmodel:\n  loss: hinge\n")
    cfg = build_config("dcgan", f, ["train.batch=4"])
    assert cfg.train.batch == 4 and cfg.model.loss == "hinge"
    f.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        build_config("dcgan", f)


def test_yaml_has_no_base_60_numbers(tmp_path):
    # YAML 1.1 (PyYAML's safe_load) reads 7:9 as 429 and 1e-4 as text.
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  domains: 7:9\nmodel:\n  lr: 1e-4\n")
    cfg = build_config("cyclegan", f)
    assert cfg.data.domains == "7:9" and cfg.model.lr == 1e-4
    assert yaml_load("[1_000, 0x10, .5, 2e-3, 10:30, -3, .inf]") == [
        1000,
        16,
        0.5,
        0.002,
        "10:30",
        -3,
        float("inf"),
    ]


def test_valid_keys_cover_nested():
    cfg = build_config("dcgan")
    keys = valid_keys(cfg)
    assert "data.augment.rotate_p" in keys and "model.lr_g" in keys
    apply_overrides(cfg, ["data.channels=null"])
    assert cfg.data.channels is None
