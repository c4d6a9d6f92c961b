"""The class-agreement score of a conditional generator: the shipped classifier's calls on samples
drawn for each class, checked against the classifier called directly on the same images, and the
within-class spread, checked against numpy on what was drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_gan
from torch import Tensor, nn

from pixelsmith.data.sources import load_images
from pixelsmith.errors import UserError
from pixelsmith.metrics.family import class_agreement_scores, family_metrics, score

SHAPE = (1, 28, 28)


class Lookup(nn.Module):
    """A generator that draws, for class c, a fixed real image of class (c + shift) mod 10."""

    def __init__(self, bank: Tensor, shift: int):
        super().__init__()
        self.register_buffer("bank", bank.float() / 255 * 2 - 1)
        self.shift = shift

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.bank[(labels + self.shift) % len(self.bank)]


def _classifier() -> nn.Module:
    from pixelsmith.metrics.classifier import WEIGHTS_DIR, load_classifier

    return load_classifier(WEIGHTS_DIR / "fmnist-cnn-v1.safetensors")[0].eval()


@pytest.mark.fashion_mnist  # CI (PIXELSMITH_REQUIRE_DATA=1) fails rather than skips without it
@pytest.mark.parametrize("shift", [0, 1])
def test_agreement_is_the_classifiers_own_call_on_what_was_drawn(shift):
    data = load_images("fashion-mnist", "test", limit=300)
    net = _classifier()
    with torch.no_grad():
        real_called = net(data.images.float() / 255).argmax(1)
    # One image per class that the classifier calls right, but a shirt that it calls wrong.
    right = real_called == data.labels
    pick = [int(torch.nonzero((data.labels == c) & (right != (c == 6)))[0]) for c in range(10)]
    bank = data.images[pick]
    fam = make_gan(SHAPE, classes=10)
    fam.networks["G"] = Lookup(bank, shift)
    values, protocol = class_agreement_scores(fam, data)

    with torch.no_grad():
        bank_called = net(bank.float() / 255).argmax(1)
    # Class c draws bank[c + shift]: its rate is 1 if the classifier calls that image c, else 0.
    per_class = (bank_called[(torch.arange(10) + shift) % 10] == torch.arange(10)).float()
    expected = per_class[data.labels].mean().item()
    assert values["samples"] == pytest.approx(expected)
    assert values["worst_class"] == per_class.min().item()
    assert values["real"] == pytest.approx((real_called == data.labels).float().mean().item())
    assert values["real"] > 0.85
    shirts = (data.labels == 6).float().mean().item()
    assert values["samples"] == pytest.approx(1 - shirts if shift == 0 else 0.0)
    assert values["worst_class"] == 0.0
    worst = int(per_class.argmin())
    assert protocol["params"]["worst"] == data.classes[worst]
    rates = [float(r) for r in protocol["params"]["per_class"].split()]
    assert rates == pytest.approx(per_class.tolist(), abs=1e-3)
    assert protocol["features_sha256"].startswith("c3a51495")
    assert score(fam, "class_agreement", data)[0] == values
    # One image per class: no spread at all, in every class.
    assert values["spread"] == values["worst_spread"] == 0.0


class Shrunk(nn.Module):
    """A generator that replays the real images of each class in turn, pulled toward the class
    mean by a factor per class: the spread of class c is factor[c] of the real one."""

    def __init__(self, data, factor: list[float]):
        super().__init__()
        self.by_class = [data.images[data.labels == c].float() / 255 for c in range(10)]
        self.factor, self.next = factor, [0] * 10

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        out = []
        for c in labels.tolist():
            bank = self.by_class[c]
            x = bank[self.next[c] % len(bank)]
            self.next[c] += 1
            out.append(bank.mean(0) + self.factor[c] * (x - bank.mean(0)))
        return torch.stack(out) * 2 - 1


@pytest.mark.fashion_mnist
def test_spread_is_each_class_pixel_spread_over_the_real_one():
    data = load_images("fashion-mnist", "test", limit=400)
    factor = [1.0, 0.9, 0.8, 0.7, 0.6, 0.0, 0.5, 0.4, 0.3, 0.2]
    fam = make_gan(SHAPE, classes=10)
    fam.networks["G"] = Shrunk(data, factor)
    values, protocol = class_agreement_scores(fam, data)

    replay = Shrunk(data, factor)  # the same draws again, for numpy
    real = data.images.numpy().reshape(len(data), -1).astype(np.float64) / 255
    labels = data.labels.numpy()
    expected = []
    for c in range(10):
        n = int((labels == c).sum())
        drawn = (replay(None, torch.full((n,), c)).numpy().reshape(n, -1) + 1) / 2
        drawn = np.round(np.clip(drawn, 0, 1) * 255) / 255
        expected.append(drawn.std(0).mean() / real[labels == c].std(0).mean())
    spreads = [float(v) for v in protocol["params"]["spread_per_class"].split()]
    assert spreads == pytest.approx(expected, abs=1e-3)
    # The factors survive the rounding to 8 bits to within a percent.
    assert spreads == pytest.approx(factor, abs=0.01)
    assert values["spread"] == pytest.approx(np.mean(expected), abs=1e-3)
    assert values["worst_spread"] == pytest.approx(0.0, abs=1e-6)
    assert protocol["params"]["least_varied"] == "Sandal"


@pytest.mark.fashion_mnist
def test_agreement_is_refused_where_it_means_nothing():
    data = load_images("fashion-mnist", "test", limit=20)
    assert "class_agreement" not in family_metrics(make_gan(SHAPE))  # unconditional
    fam = make_gan(SHAPE, classes=10)
    assert "class_agreement" in family_metrics(fam)
    with pytest.raises(UserError, match="no shipped classifier knows the classes of shapes"):
        class_agreement_scores(make_gan((1, 16, 16), classes=3), load_images("shapes", "test"))
    domains = load_images("fashion-mnist", "test", domains="sneaker:ankle boot", limit=20)
    with pytest.raises(UserError, match="loaded with data.domains"):
        class_agreement_scores(make_gan(SHAPE, classes=2), domains)
    unlabelled = load_images("fashion-mnist", "test", limit=20)
    unlabelled.labels = None
    with pytest.raises(UserError, match="has no labels, so class agreement"):
        class_agreement_scores(fam, unlabelled)
    fam.manifest = {"classes": list(reversed(data.classes))}
    with pytest.raises(UserError, match="not the ones the model was trained on"):
        class_agreement_scores(fam, data)
