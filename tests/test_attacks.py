"""The attacks (pixelsmith.nn.attacks): their contract, closed forms on linear models, and
torchattacks 3.5.1 as an independent second implementation."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.errors import UserError
from pixelsmith.nn import attacks
from pixelsmith.nn.attacks import apgd, cw_l2, fgsm, pgd, square

K, SIZE = 5, 12


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Five classes of 12x12 grey images: a bar at one of four edges or a central diamond,
    faint under strong noise, so small budgets already fool a classifier."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    r = torch.arange(SIZE)
    rows, cols = r[:, None].expand(SIZE, SIZE), r[None, :].expand(SIZE, SIZE)
    centre = (rows - SIZE / 2).abs() + (cols - SIZE / 2).abs() < 4
    shapes = [rows < 4, rows >= SIZE - 4, cols < 4, cols >= SIZE - 4, centre]
    patterns = torch.stack([s.float() - s.float().mean() for s in shapes])
    x = 0.5 + 0.25 * torch.randn(n, 1, SIZE, SIZE, generator=g) + 0.2 * patterns[y][:, None]
    return x.clamp(0, 1), y


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, K),
    )


@pytest.fixture(scope="module")
def model() -> nn.Module:
    """A tiny CNN trained for 200 steps (under a second), in eval mode."""
    torch.manual_seed(0)
    net = _cnn()
    x, y = _data(2000, 0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return _data(300, 5)


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


# Each attack as a call (model, x, y, eps, seed) -> x_adv, under both norms where it has them.
ATTACKS = {
    "fgsm": lambda m, x, y, e, s: fgsm(m, x, y, e),
    "pgd-linf": lambda m, x, y, e, s: pgd(m, x, y, e, steps=5, seed=s),
    "pgd-l2": lambda m, x, y, e, s: pgd(m, x, y, e, norm="l2", steps=5, seed=s),
    "pgd-trades": lambda m, x, y, e, s: pgd(m, x, None, e, steps=5, loss="trades", seed=s),
    "apgd-linf": lambda m, x, y, e, s: apgd(m, x, y, e, steps=5, seed=s),
    "apgd-l2-dlr": lambda m, x, y, e, s: apgd(m, x, y, e, norm="l2", loss="dlr", steps=5, seed=s),
    "square-linf": lambda m, x, y, e, s: square(m, x, y, e, queries=30, seed=s),
    "square-l2": lambda m, x, y, e, s: square(m, x, y, e, norm="l2", queries=30, seed=s),
}
L2_EPS, LINF_EPS = 0.8, 0.06


def _eps(name: str) -> float:
    return L2_EPS if "l2" in name else LINF_EPS


@pytest.mark.parametrize("name", ATTACKS)
def test_eps_zero_returns_the_images_exactly(model, test_set, name):
    x, y = test_set[0][:16], test_set[1][:16]
    out = ATTACKS[name](model, x, y, 0.0, 0)
    assert torch.equal(out, x) and out is not x


@pytest.mark.parametrize("name", ATTACKS)
def test_results_lie_inside_the_ball_and_the_unit_box(model, test_set, name):
    x, y = test_set[0][:48], test_set[1][:48]
    assert x.min() == 0 and x.max() == 1  # pixels on the box's faces, where clipping bites
    eps = _eps(name)
    out = ATTACKS[name](model, x, y, eps, 0)
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    d = (out - x).flatten(1)
    if "l2" in name:
        assert d.norm(dim=1).max() <= eps * (1 + 1e-5)
        assert d.norm(dim=1).max() >= 0.5 * eps  # it did move
    else:
        assert d.abs().max() <= eps + 1e-6
        assert d.abs().max() >= 0.99 * eps


def test_cw_returns_a_point_that_fools_the_model_or_the_image_itself(model, test_set):
    x, y = test_set[0][:48], test_set[1][:48]
    out = cw_l2(model, x, y, c=5.0, steps=60, lr=0.05)
    assert out.min() >= 0 and out.max() <= 1
    kept = (out == x).flatten(1).all(1)
    with torch.no_grad():
        fooled = model(out).argmax(1) != y
    assert fooled.float().mean() > 0.5
    assert (kept | fooled).all() and not (kept & fooled).any()


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "fgsm"])
def test_seeded_calls_repeat_and_other_seeds_differ(model, test_set, name):
    x, y = test_set[0][:32], test_set[1][:32]
    eps = _eps(name)
    a, b = ATTACKS[name](model, x, y, eps, 3), ATTACKS[name](model, x, y, eps, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    c = ATTACKS[name](model, x, y, eps, 4)
    assert (a - c).abs().max() > 1e-3


def test_the_model_its_modes_parameters_and_the_global_rng_are_untouched(test_set):
    torch.manual_seed(0)
    net = _cnn().train()
    net[1].eval()  # mixed modes must come back as they were
    net[0].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    rng = torch.get_rng_state()
    x, y = test_set[0][:16], test_set[1][:16]
    for name, attack in ATTACKS.items():
        attack(net, x, y, _eps(name), 0)
    cw_l2(net, x, y, steps=3)
    assert [m.training for m in net.modules()] == modes
    for k, v in net.state_dict().items():  # BatchNorm's running statistics included
        assert torch.equal(v, before[k]), k
    assert not net[0].bias.requires_grad and net[0].weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


TARGETED = {
    "fgsm": lambda m, x, t: fgsm(m, x, t, 0.12, targeted=True),
    "pgd-linf": lambda m, x, t: pgd(m, x, t, 0.12, steps=10, targeted=True),
    "pgd-l2": lambda m, x, t: pgd(m, x, t, 1.5, norm="l2", steps=10, targeted=True),
    "apgd-ce": lambda m, x, t: apgd(m, x, t, 0.12, steps=10, targeted=True),
    "apgd-dlr": lambda m, x, t: apgd(m, x, t, 0.12, loss="dlr", steps=10, targeted=True),
    "cw-l2": lambda m, x, t: cw_l2(m, x, t, c=5.0, steps=60, lr=0.05, targeted=True),
    "square": lambda m, x, t: square(m, x, t, 0.12, queries=100, targeted=True),
}


@pytest.mark.parametrize("name", TARGETED)
def test_targeted_attacks_hit_their_targets_more_often_than_chance(model, test_set, name):
    x, y = test_set[0][:100], test_set[1][:100]
    g = torch.Generator().manual_seed(7)
    target = (y + torch.randint(1, K, y.shape, generator=g)) % K
    out = TARGETED[name](model, x, target)
    with torch.no_grad():
        hit = (model(out).argmax(1) == target).float().mean().item()
    chance = 1 / K
    assert hit > chance + 3 * math.sqrt(chance * (1 - chance) / len(y)), hit


# A margin fixed before any run: two percentage points (six of 300 images) may go the wrong way
# between neighbouring budgets, since PGD from a random start is not monotone image by image.
MONOTONE_MARGIN = 0.02


def test_accuracy_under_pgd_does_not_rise_with_eps_or_steps(model, test_set):
    x, y = test_set
    by_eps = [
        _accuracy(model, pgd(model, x, y, e, steps=10), y) for e in (0, 0.02, 0.04, 0.06, 0.1)
    ]
    assert by_eps[0] > 0.9 and by_eps[-1] < 0.2, by_eps  # the budgets span the curve
    by_steps = [_accuracy(model, pgd(model, x, y, 0.05, steps=s), y) for s in (1, 3, 10, 30)]
    for accs in (by_eps, by_steps):
        for a, b in zip(accs, accs[1:], strict=False):
            assert b <= a + MONOTONE_MARGIN, accs


def test_restarts_never_lose_what_the_first_run_found(model, test_set):
    x, y = test_set
    for attack in (pgd, apgd):
        one = _accuracy(model, attack(model, x, y, 0.05, steps=5), y)
        three = _accuracy(model, attack(model, x, y, 0.05, steps=5, restarts=3), y)
        assert three <= one  # the first restart is the single run; the others add to it


def test_pgd_takes_a_step_schedule(model, test_set):
    x, y = test_set[0][:32], test_set[1][:32]
    still = pgd(model, x, y, 0.1, alpha=[0.0] * 4, steps=4, random_start=False)
    assert torch.equal(still, x)  # steps of size zero never leave x
    moved = pgd(model, x, y, 0.1, alpha=[0.05, 0.03, 0.01, 0.0], steps=4, random_start=False)
    assert (moved - x).abs().max() > 0.04
    with pytest.raises(UserError, match="one per step"):
        pgd(model, x, y, 0.1, alpha=[0.1, 0.1], steps=4)


def _kl(net: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        p = F.softmax(net(x), 1)
        return (p * (p.log() - F.log_softmax(net(x_adv), 1))).sum(1)


def test_trades_loss_maximises_the_kl_to_the_clean_prediction(model, test_set):
    x = test_set[0][:64]
    eps = 0.06
    adv = pgd(model, x, None, eps, steps=10, loss="trades")
    noise = x + eps * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 1)
    noise = noise.clamp(0, 1)
    assert _kl(model, x, adv).mean() > 5 * _kl(model, x, noise).mean()
    assert _kl(model, x, adv).mean() > 0.1
    with pytest.raises(UserError, match="no target"):
        pgd(model, x, None, eps, loss="trades", targeted=True)


def test_attacks_work_under_no_grad_and_on_images_that_require_grad(model, test_set):
    x, y = test_set[0][:32], test_set[1][:32]
    ref = pgd(model, x, y, 0.06, steps=5)
    with torch.no_grad():
        inside = pgd(model, x, y, 0.06, steps=5)
    torch.testing.assert_close(inside, ref, rtol=0, atol=1e-6)
    out = apgd(model, x.clone().requires_grad_(True), y, 0.06, steps=5)
    assert not out.requires_grad


def test_a_torchscript_classifier_is_attacked_and_keeps_its_mode(model, test_set):
    x, y = test_set[0][:64], test_set[1][:64]
    scripted = torch.jit.trace(model, x[:2])
    scripted.train()
    out = pgd(scripted, x, y, 0.08, steps=10)
    assert scripted.training
    assert _accuracy(model, out, y) < _accuracy(model, x, y) - 0.3


# --- closed forms on linear models -------------------------------------------------------------


class _Logistic(nn.Module):
    """A binary logistic model as two logits (0, w.x + b)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.linear = nn.Linear(w.numel(), 1)
        with torch.no_grad():
            self.linear.weight.copy_(w.view(1, -1))
            self.linear.bias.fill_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.linear(x.flatten(1))
        return torch.cat([torch.zeros_like(s), s], 1)


def _logistic(seed: int = 0) -> tuple[_Logistic, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(36, generator=g)
    w = w.sign() * w.abs().clamp(min=0.1)  # no zero weights: the sign is defined everywhere
    return _Logistic(w, 0.3), w


def test_linf_attacks_reach_the_closed_form_optimum_of_a_logistic_model():
    net, w = _logistic()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 6, 6, generator=g)
    y = torch.randint(0, 2, (64,), generator=g)
    eps = 0.1
    # The cross-entropy of label y rises as w.x moves against y: each pixel goes eps the other
    # way, stopped by the box.
    push = -(2 * y - 1).float().view(-1, 1, 1, 1) * w.sign().view(1, 1, 6, 6)
    optimum = (x + eps * push).clamp(0, 1)
    for out in (
        fgsm(net, x, y, eps),
        pgd(net, x, y, eps, steps=10),
        pgd(net, x, y, eps, steps=10, restarts=2, seed=5),
    ):
        torch.testing.assert_close(out, optimum, rtol=0, atol=1e-6)
    # APGD, an evaluation attack, leaves the images the model already gets wrong alone and
    # stops on an image once fooled: it reaches the optimum of those that the optimum leaves right.
    with torch.no_grad():
        right, robust = net(x).argmax(1) == y, net(optimum).argmax(1) == y
    assert 0 < robust.sum() < right.sum() < len(y)
    out = apgd(net, x, y, eps, steps=10)
    torch.testing.assert_close(out[robust], optimum[robust], rtol=0, atol=1e-6)
    assert torch.equal(out[~right], x[~right])
    with torch.no_grad():
        assert (net(out[right & ~robust]).argmax(1) != y[right & ~robust]).all()


def test_l2_attacks_reach_the_closed_form_optimum_of_a_logistic_model():
    net, w = _logistic()
    g = torch.Generator().manual_seed(2)
    x = 0.3 + 0.4 * torch.rand(64, 1, 6, 6, generator=g)  # inside, so the box never binds
    y = torch.randint(0, 2, (64,), generator=g)
    eps = 0.3
    unit = (w / w.norm()).view(1, 1, 6, 6)
    optimum = x - eps * (2 * y - 1).float().view(-1, 1, 1, 1) * unit
    torch.testing.assert_close(
        pgd(net, x, y, eps, norm="l2", steps=10, random_start=False), optimum, rtol=0, atol=1e-5
    )
    # From a random start on the sphere, each step along -w and projection back shrinks the part
    # across w: geometrically for steps of size eps, and APGD starts with steps of 2 eps.
    l2_random = pgd(net, x, y, eps, norm="l2", alpha=eps, steps=20)
    torch.testing.assert_close(l2_random, optimum, rtol=0, atol=1e-4)
    with torch.no_grad():
        robust = net(optimum).argmax(1) == y  # the images APGD cannot fool, so it never stops
    assert 0 < robust.sum() < len(y)
    out = apgd(net, x, y, eps, norm="l2", steps=10)
    torch.testing.assert_close(out[robust], optimum[robust], rtol=0, atol=1e-3)


def test_cw_l2_finds_the_nearest_point_across_a_linear_boundary():
    net, w = _logistic()
    g = torch.Generator().manual_seed(3)
    x = 0.3 + 0.4 * torch.rand(32, 1, 6, 6, generator=g)
    with torch.no_grad():
        score = net.linear(x.flatten(1))[:, 0]
    y = (score > 0).long()  # the model's own labels, so every image can be flipped
    nearest = score.abs() / w.norm()  # the distance to the hyperplane w.x + b = 0
    # With c ||w|| / 2 far above every distance, the objective's minimum is on the hyperplane.
    out = cw_l2(net, x, y, c=5.0, steps=600, lr=0.002)
    dist = (out - x).flatten(1).norm(dim=1)
    with torch.no_grad():
        assert (net(out).argmax(1) != y).all()
    assert (dist >= nearest * (1 - 1e-4)).all()  # nothing crosses closer than the hyperplane
    assert (dist <= nearest * 1.1).all(), (dist / nearest).max()


# --- torchattacks 3.5.1: the same model, images and steps ---------------------------------------

# Half a percentage point, as issue 19 asks. Single random starts of two implementations differ by
# a few images on 300 (chance, either way), so the random-start comparisons average four seeds.
TA_MARGIN = 0.005


@pytest.fixture(scope="module")
def torchattacks():
    return pytest.importorskip(
        "torchattacks",
        reason="torchattacks is not installed (pip install --no-deps torchattacks==3.5.1)",
    )


@pytest.mark.slow
def test_pgd_is_as_strong_as_torchattacks_pgd(model, test_set, torchattacks):
    x, y = test_set
    eps, steps = 0.05, 10
    ours = _accuracy(
        model, pgd(model, x, y, eps, alpha=eps / 4, steps=steps, random_start=False), y
    )
    ta = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=False)
    theirs = _accuracy(model, ta(x, y), y)
    assert ours <= theirs + TA_MARGIN, (ours, theirs)
    ours, theirs = [], []
    for seed in range(4):
        ours.append(_accuracy(model, pgd(model, x, y, eps, steps=steps, seed=seed), y))
        torch.manual_seed(seed)  # torchattacks draws its start from the global generator
        ta = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=True)
        theirs.append(_accuracy(model, ta(x, y), y))
    assert sum(ours) / 4 <= sum(theirs) / 4 + TA_MARGIN, (ours, theirs)
    assert max(theirs) < _accuracy(model, x, y) - 0.2  # the budget bites


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_is_as_strong_as_torchattacks_apgd(model, test_set, torchattacks, loss):
    x, y = test_set
    eps, steps = 0.05, 20
    ours, theirs = [], []
    for seed in range(4):
        ours.append(_accuracy(model, apgd(model, x, y, eps, loss=loss, steps=steps, seed=seed), y))
        ta = torchattacks.APGD(model, eps=eps, steps=steps, loss=loss, seed=seed)
        theirs.append(_accuracy(model, ta(x, y), y))
    assert sum(ours) / 4 <= sum(theirs) / 4 + TA_MARGIN, (ours, theirs)
    assert max(theirs) < _accuracy(model, x, y) - 0.2


@pytest.mark.slow
def test_square_is_as_strong_as_torchattacks_square(model, test_set, torchattacks):
    # Linf only: torchattacks 3.5.1's Square-L2 fails on 12x12 images (its 2x2 bumps).
    x, y = test_set
    eps, queries = 0.05, 300
    ours, theirs = [], []
    for seed in range(2):
        ours.append(_accuracy(model, square(model, x, y, eps, queries=queries, seed=seed), y))
        ta = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=queries, seed=seed)
        theirs.append(_accuracy(model, ta(x, y), y))
    assert sum(ours) / 2 <= sum(theirs) / 2 + TA_MARGIN, (ours, theirs)
    assert max(ours) < _accuracy(model, x, y) - 0.2


# --- Square on black boxes ----------------------------------------------------------------------


def test_square_attacks_a_plain_callable_that_returns_numpy(model, test_set):
    x, y = test_set[0][:100], test_set[1][:100]

    def black_box(images: torch.Tensor):
        with torch.no_grad():
            return model(images).numpy()  # .numpy() refuses a tensor that requires grad

    clean = _accuracy(model, x, y)
    out = square(black_box, x, y, 0.1, queries=200)
    assert (out - x).abs().max() <= 0.1 + 1e-6
    assert _accuracy(model, out, y) < clean - 0.4
    with pytest.raises(UserError, match="square"):
        pgd(black_box, x, y, 0.1)


@pytest.mark.slow
def test_square_attacks_an_onnx_runtime_session(model, test_set):
    ort = pytest.importorskip(
        "onnxruntime", reason="the deploy extra (onnxruntime) is not installed"
    )
    x, y = test_set[0][:100], test_set[1][:100]
    program = torch.onnx.export(
        model, (x[:2],), dynamo=True, dynamic_shapes=({0: torch.export.Dim("n", min=1)},),
        verbose=False, report=False,
    )  # fmt: skip
    buffer = io.BytesIO()
    buffer.write(program.model_proto.SerializeToString())
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def onnx_model(images: torch.Tensor):
        return session.run(None, {name: images.numpy()})[0]

    out = square(onnx_model, x, y, 0.1, queries=200)
    assert (out - x).abs().max() <= 0.1 + 1e-6
    # The session computes the same network: what fools it fools the torch model.
    fooled_onnx = torch.as_tensor(onnx_model(out)).argmax(1) != y
    with torch.no_grad():
        fooled_torch = model(out).argmax(1) != y
    assert fooled_onnx.float().mean() > 0.4
    assert (fooled_onnx == fooled_torch).float().mean() >= 0.95


# --- refusals ----------------------------------------------------------------------------------


class _Tuple(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :4], x.flatten(1)[:, :3]


class _Flat(nn.Module):
    def forward(self, x):
        return x.flatten(1).sum(1)


class _NaN(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 3), float("nan"))


def _bad_calls(model, x, y):
    """(call, words the refusal must contain)."""
    two = _logistic()[0]
    x36 = x[:, :, :6, :6]
    return [
        (lambda: pgd(model, x, y, -0.1), "eps"),
        (lambda: pgd(model, x, y, float("nan")), "eps"),
        (lambda: apgd(model, x, y, float("inf")), "eps"),
        (lambda: fgsm(model, x, y, "0.1"), "eps"),
        (lambda: pgd(model, x * 2, y, 0.1), r"\[0, 1\]"),
        (lambda: square(model, x - 0.5, y, 0.1), r"\[0, 1\]"),
        (lambda: pgd(model, x[0], y, 0.1), r"\(N, C, H, W\)"),
        (lambda: pgd(model, (x * 255).to(torch.uint8), y, 0.1), "float"),
        (lambda: pgd(model, x.numpy(), y, 0.1), "tensor"),
        (lambda: pgd(model, x, y[:, None], 0.1), "shape"),
        (lambda: pgd(model, x, y[:-1], 0.1), "shape"),
        (lambda: pgd(model, x, y.float(), 0.1), "whole-number"),
        (lambda: apgd(model, x, y + K, 0.1), "classes"),
        (lambda: square(model, x, y - K, 0.1), "classes"),
        (lambda: pgd(model, x, (y + K), 0.1, targeted=True), "target labels"),
        (lambda: pgd(_Tuple(), x, y % 3, 0.1), "tuple"),
        (lambda: pgd(_Flat(), x, y, 0.1), r"\(N, K\)"),
        (lambda: square(_NaN(), x, y % 3, 0.1), "finite"),
        (lambda: pgd("model", x, y, 0.1), "callable"),
        (lambda: pgd(model, x, y, 0.1, norm="l1"), "norm 'l1'"),
        (lambda: apgd(model, x, y, 0.1, norm="Lp"), "norm"),
        (lambda: square(model, x, y, 0.1, norm="l0"), "norm"),
        (lambda: pgd(model, x, y, 0.1, loss="dlr"), "loss 'dlr'"),
        (lambda: apgd(model, x, y, 0.1, loss="mse"), "loss 'mse'"),
        (lambda: apgd(two, x36, y % 2, 0.1, loss="dlr"), "at least 3 classes"),
        (lambda: pgd(model, x, y, 0.1, steps=-1), "steps"),
        (lambda: pgd(model, x, y, 0.1, restarts=0), "restarts"),
        (lambda: pgd(model, x, y, 0.1, alpha=-0.1), "alpha"),
        (lambda: square(model, x, y, 0.1, queries=0), "queries"),
        (lambda: square(model, x, y, 0.1, p_init=1.5), "p_init"),
        (lambda: cw_l2(model, x, y, c=-1.0), "c must"),
        (lambda: cw_l2(model, x, y, lr=0.0), "lr"),
    ]


def test_bad_input_is_refused_in_one_sentence(model, test_set):
    x, y = test_set[0][:4], test_set[1][:4]
    for call, words in _bad_calls(model, x, y):
        with pytest.raises(UserError, match=words):
            call()


def test_the_robust_room_re_exports_the_attacks():
    import pixelsmith.robust as robust
    from pixelsmith.robust import apgd as r_apgd
    from pixelsmith.robust import pgd as r_pgd

    assert r_pgd is pgd and r_apgd is apgd and robust.attacks is attacks
    assert {"fgsm", "pgd", "cw_l2", "apgd", "square"} <= set(robust.__all__)
