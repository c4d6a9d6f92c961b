"""Membership inference: the ROC against scikit-learn's, a memorising classifier caught by the
loss attack and a fresh one not, a copying generator caught by the nearest-sample attack and an
independent one not, and `pixelsmith privacy audit` on the shipped models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.metrics import membership as mi


def test_the_roc_is_scikit_learns_ties_included():
    g = torch.Generator().manual_seed(0)
    member = torch.randint(0, 20, (300,), generator=g).float() + 2
    nonmember = torch.randint(0, 20, (500,), generator=g).float()
    y = np.r_[np.ones(300), np.zeros(500)]
    s = torch.cat([member, nonmember]).numpy()
    report = mi.membership_report(member, nonmember)
    assert report["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-4)
    fpr, tpr, _ = roc_curve(y, s)
    assert report["tpr_at_1pct_fpr"] == pytest.approx(tpr[fpr <= 0.01].max(), abs=1e-4)
    assert report["advantage"] == pytest.approx((tpr - fpr).max(), abs=1e-4)
    with pytest.raises(UserError):
        mi.roc(member, member[:0])


def _memoriser(x: torch.Tensor, y: torch.Tensor, steps: int) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_the_loss_attack_catches_a_memorising_classifier_only():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(128, 1, 12, 12, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)  # random labels: only memory fits them
    members, fresh = slice(0, 64), slice(64, 128)
    for steps, low, high in ((300, 0.95, 1.0), (0, 0.3, 0.7)):
        net = _memoriser(x[members], y[members], steps)
        r = mi.membership_report(
            mi.loss_scores(net, x[members], y[members]), mi.loss_scores(net, x[fresh], y[fresh])
        )
        assert low <= r["auc"] <= high, (steps, r)


def test_the_nearest_sample_attack_catches_a_copying_generator_only():
    g = torch.Generator().manual_seed(2)
    members, fresh = torch.rand(100, 1, 8, 8, generator=g), torch.rand(100, 1, 8, 8, generator=g)
    copies = (members + 0.02 * torch.randn(members.shape, generator=g)).clamp(0, 1)
    caught = mi.membership_report(
        mi.nearest_sample_scores(copies, members), mi.nearest_sample_scores(copies, fresh)
    )
    assert caught["auc"] > 0.99 and caught["tpr_at_1pct_fpr"] > 0.9
    other = torch.rand(300, 1, 8, 8, generator=g)
    fair = mi.membership_report(
        mi.nearest_sample_scores(other, members), mi.nearest_sample_scores(other, fresh)
    )
    assert 0.35 <= fair["auc"] <= 0.65


@pytest.mark.zoo
@pytest.mark.fashion_mnist
@pytest.mark.parametrize("model", ["zoo:fmnist-robust", "zoo:fmnist-gan"])
def test_audit_the_shipped_models(model, capsys):
    argv = ["privacy", "audit", model, "--members", "fashion-mnist:train"]
    assert (
        main([*argv, "--non-members", "fashion-mnist:test", "--n", "300", "--samples", "500"]) == 0
    )
    out = capsys.readouterr().out
    auc = float(out.split("membership AUC ")[1].split(",")[0])
    assert 0.35 <= auc <= 0.7, out  # neither memorises these images measurably
    assert main(["privacy", "audit", "zoo:sr-x2", *argv[3:], "--non-members", "mnist"]) == 2


def test_lira_calibrates_each_image_where_a_global_threshold_cannot():
    from scipy.stats import norm

    g = torch.Generator().manual_seed(3)
    n, k = 400, 16
    hard = torch.randn(n, generator=g) * 3  # how confident any model is on each image
    member = torch.arange(n) < n // 2
    shadow_in = torch.rand(k, n, generator=g) < 0.5
    shadow_in[:2], shadow_in[2:4] = True, False  # every image in and out of two at least
    shadow = hard + 0.8 * shadow_in + 0.3 * torch.randn(k, n, generator=g)
    target = hard + 0.8 * member + 0.3 * torch.randn(n, generator=g)
    scores = mi.lira_scores(target, shadow, shadow_in)
    # the log-likelihood ratio, against scipy's normal densities with the pooled spreads
    s, m = shadow.double().numpy(), shadow_in.numpy()
    mu_in, mu_out = (s * m).sum(0) / m.sum(0), (s * ~m).sum(0) / (~m).sum(0)
    sd_in = np.sqrt(((s - mu_in) ** 2 * m).sum() / (m.sum() - n))
    sd_out = np.sqrt(((s - mu_out) ** 2 * ~m).sum() / ((~m).sum() - n))
    t = target.double().numpy()
    want = norm.logpdf(t, mu_in, sd_in) - norm.logpdf(t, mu_out, sd_out)
    np.testing.assert_allclose(scores.numpy(), want, rtol=1e-4, atol=1e-4)
    lira = mi.membership_report(scores[member], scores[~member])["auc"]
    plain = mi.membership_report(target[member], target[~member])["auc"]
    assert lira > 0.9 and plain < 0.7, (lira, plain)
    offline = mi.lira_scores(target, shadow, torch.zeros_like(shadow_in))
    assert mi.membership_report(offline[member], offline[~member])["auc"] > 0.85
    with pytest.raises(UserError, match="left out"):
        mi.lira_scores(target, shadow[:1], torch.zeros_like(shadow_in[:1]))


def test_the_logit_confidence_is_log_odds_of_the_true_label():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 30.0, 0.0]])
    net = nn.Identity()
    phi = mi.logit_confidence(net, logits, torch.tensor([0, 1]))
    p = torch.softmax(logits.double(), 1)
    assert phi[0].item() == pytest.approx(float(torch.log(p[0, 0] / (1 - p[0, 0]))), rel=1e-9)
    assert phi[1].item() == pytest.approx(30.0 - math.log(2.0), rel=1e-9)  # finite where p ~ 1


def test_the_discriminator_score_catches_a_discriminator_that_memorised_its_images(tiny_gan):
    g = torch.Generator().manual_seed(4)
    members, fresh = torch.rand(32, 1, 16, 16, generator=g), torch.rand(32, 1, 16, 16, generator=g)
    gan = tiny_gan()
    before = mi.membership_report(gan.discriminate(members), gan.discriminate(fresh))["auc"]
    D = gan.networks["D"]
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    for _ in range(150):  # members are "real", fresh noise of the same kind "fake"
        fake = torch.rand(32, 1, 16, 16, generator=g)
        loss = nn.functional.softplus(-D(members * 2 - 1)).mean()
        loss = loss + nn.functional.softplus(D(fake * 2 - 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = mi.membership_report(gan.discriminate(members), gan.discriminate(fresh))["auc"]
    assert 0.3 < before < 0.7 and after > 0.9, (before, after)


@pytest.mark.slow
def test_the_audit_verb_runs_lira_with_shadows_trained_by_the_targets_recipe(tmp_path, capsys):
    """A memoriser is caught by LiRA from the CLI; a model trained for one step is not."""
    from pixelsmith.cli.main import main
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    aucs = {}
    for name, steps in (("memoriser", 120), ("untrained", 1)):
        overrides = ["data.source=shapes", "data.limit=40", "train.batch=10",
                     f"train.steps={steps}", "model.dropout=0", "model.weight_decay=0",
                     "train.threads=1", "train.eval_at_end=false"]  # fmt: skip
        run = train(
            build_config("classifier", overrides=overrides), tmp_path / name, progress=False
        )
        capsys.readouterr()
        argv = ["privacy", "audit", str(run), "--members", "shapes:train", "--non-members",
                "shapes:test", "--n", "40", "--lira", "4", "--json"]  # fmt: skip
        assert main(argv) == 0
        report = json.loads(capsys.readouterr().out)
        assert "4 shadows: the target's recipe (classifier)" in report["lira"]["attack"]
        aucs[name] = report["lira"]["auc"]
    assert aucs["memoriser"] > 0.9 and aucs["untrained"] < 0.8, aucs
    bare = ["privacy", "audit", "fmnist", "--members", "fashion-mnist:train", "--non-members",
            "fashion-mnist:test", "--n", "20", "--lira", "2"]  # fmt: skip
    assert main(bare) == 2
    assert "not a bare network" in capsys.readouterr().err
