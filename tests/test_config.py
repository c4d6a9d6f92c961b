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
    # The 2-CPU-hour recipe is sc-gan's with 50 clusters, a wider D, batch 64, bf16 where fast,
    # a long EMA and the rate at 0.3x for the last 4% of the budget.
    two, sc = build_config("sc-gan-2h"), build_config("sc-gan")
    assert (two.model.clusters, sc.model.clusters, two.model.mode_seeking) == (50, 20, 0.25)
    assert (two.model.d_channels, two.model.lr_g, two.model.lr_d) == (32, 2e-4, 2e-4)
    assert (two.train.batch, two.train.ema_kimg, two.train.precision) == (64, 10.0, "auto")
    assert (two.train.minutes, two.train.threads, sc.train.ema_kimg) == (120.0, 1, 0.5)
    assert (two.train.lr_schedule, two.train.lr_milestones, two.train.lr_gamma) == (
        "step",
        (0.96,),
        0.3,
    )
    # A family's name names its first preset.
    assert build_config("gan").preset == "dcgan" and build_config("gan").family == "gan"


def test_every_preset_states_its_budget_and_runs_it():
    from pixelsmith.models import presets

    for name, (fam, row) in presets().items():
        assert row.about and row.minutes > 0, name
        cfg = build_config(name)
        assert cfg.family == fam.name, name
        if cfg.privacy.epsilon is not None and not fam.abilities.releases:
            # DP-SGD's noise is chosen for a budget of steps (a release's is not)
            assert cfg.train.epochs and (cfg.train.steps, cfg.train.minutes) == (None, None), name
            continue
        assert cfg.train.minutes == row.minutes, name
        assert (cfg.train.steps, cfg.train.epochs) == (None, None), name
    # An explicit budget replaces the preset's.
    cfg = build_config("diffusion-30min", overrides=["train.steps=5"])
    assert (cfg.train.steps, cfg.train.minutes) == (5, None)


def test_30min_presets_are_named_for_their_budget_not_their_size():
    from pixelsmith.models import presets

    thirty = {n for n, (_, row) in presets().items() if row.minutes == 30}
    assert thirty == {
        f"{f}-30min" for f in ("vae", "pixelcnn", "diffusion", "cyclegan", "stylegan")
    }


def test_old_run_configs_still_load():
    from pixelsmith.train.config import config_from_dict

    # A manifest of an older version: `--preset small` and diffusion's sampling in the model.
    old = {
        "preset": "diffusion",
        "variant": "small",
        "model": {"channels": 8, "sample_steps": 20, "sampler": "ddpm"},
        "train": {"steps": 3},
    }
    cfg = config_from_dict(old)
    assert cfg.preset == "diffusion-30min" and cfg.model.channels == 8
    assert (cfg.sample.steps, cfg.sample.sampler) == (20, "ddpm")


def test_sample_section_is_typed_and_listed():
    cfg = build_config("diffusion", overrides=["sample.steps=25", "sample.labels=3,3,7"])
    assert cfg.sample.steps == 25 and cfg.sample.labels == (3, 3, 7)
    with pytest.raises(UserError, match="sample.steps"):
        build_config("diffusion", overrides=["sample.stpes=25"])


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
