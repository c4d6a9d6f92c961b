"""DPM-Solver++(2M): its first-order step is DDIM's, it spends exactly `steps` network calls and
none at t = 0, draws no noise, and on data whose exact noise predictor and probability-flow
solution are known in closed form (a Gaussian) it converges at second order where DDIM is first."""

from __future__ import annotations

import math

import pytest
import torch

from pixelsmith.models.diffusion import (
    Diffusion,
    DiffusionConfig,
    ddim_step,
    dpm_solver_step,
    solver_sequence,
    timestep_sequence,
)

S = 0.25  # the data's standard deviation: x0 ~ N(0, S^2) in every pixel


def test_the_first_order_step_is_ddims():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 5, 5, generator=g)
    x0 = torch.rand(4, 1, 5, 5, generator=g) * 1.6 - 0.8
    for ab_t, ab_next in ((0.05, 0.3), (0.5, 0.9), (0.9, 1.0)):
        eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
        want = ddim_step(x, eps, ab_t, ab_next, 0.0, None)
        got = dpm_solver_step(x, x0, ab_t, ab_next)
        assert torch.allclose(got, want, atol=1e-5)


def test_the_second_order_step_extrapolates_the_data_prediction_linearly_in_lambda():
    # The exact step is x_next = (s_n / s_t) x + s_n * integral of e^lambda D(lambda) d lambda.
    # For D linear in lambda, 2M takes D at the step's midpoint (an O(h^3) error); first order
    # takes it at the start (O(h^2): about 10 times this bound here). Quadrature as reference.
    ab = (0.2, 0.5, 0.8)  # previous, now, next
    lam = [0.5 * math.log(a / (1 - a)) for a in ab]
    x = torch.tensor([0.3])
    d_prev, d_now = torch.tensor([0.1]), torch.tensor([0.4])
    slope = (d_now - d_prev) / (lam[1] - lam[0])
    got = dpm_solver_step(x, d_now, ab[1], ab[2], (d_prev, ab[0]))
    sig = [math.sqrt(1 - a) for a in ab]
    m = 20_000
    grid = torch.linspace(lam[1], lam[2], m + 1, dtype=torch.float64)
    mid = (grid[1:] + grid[:-1]) / 2
    integrand = torch.exp(mid) * (d_now.double() + slope.double() * (mid - lam[1]))
    exact = sig[2] / sig[1] * x.double() + sig[2] * integrand.sum() * (grid[1] - grid[0])
    h = lam[2] - lam[1]
    assert float((got.double() - exact).abs()) < 0.05 * h**2


def _gaussian_model(timesteps: int = 1000) -> tuple[Diffusion, list[int]]:
    """A diffusion family whose noise estimate is the exact one for N(0, S^2) data."""
    fam = Diffusion(DiffusionConfig(channels=4, channel_mult="1", timesteps=timesteps), (1, 4, 4))
    calls: list[int] = []

    def eps(net, x, t, labels=None, guidance=1.0):
        calls.append(int(t[0]))
        ab = fam.alpha_bar.float()[t].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * x / (ab * S * S + 1 - ab)

    fam.eps = eps
    return fam, calls


def _error(fam: Diffusion, sampler: str, steps: int) -> float:
    """Largest error against the exact probability-flow solution x0 = x_T S / sqrt(v_T)."""
    x_T = torch.linspace(-3, 3, 16).view(1, 1, 4, 4)
    ab_T = fam.alpha_bar[-1].item()
    exact = x_T * S / math.sqrt(ab_T * S * S + 1 - ab_T)
    fam.sample_defaults = fam.sample_options(sampler=sampler, steps=steps)
    return float((fam.denoise(x_T, torch.Generator()) - exact).abs().max())


def test_it_converges_at_second_order_where_ddim_is_first():
    fam, _ = _gaussian_model()
    dpm = {n: _error(fam, "dpm-solver++", n) for n in (20, 40, 80)}
    ddim = {n: _error(fam, "ddim", n) for n in (20, 40, 80)}
    # halving the step: DDIM's error halves, the solver's falls by about 4 or more
    assert all(1.6 < ddim[n] / ddim[2 * n] < 2.5 for n in (20, 40))
    assert all(dpm[n] / dpm[2 * n] > 3.0 for n in (20, 40))
    assert dpm[40] < ddim[40] / 4


def test_it_calls_the_network_steps_times_never_at_t0_and_draws_no_noise():
    fam, calls = _gaussian_model(timesteps=100)
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    fam.sample_defaults = fam.sample_options(sampler="dpm-solver++", steps=10)
    fam.denoise(torch.randn(2, 1, 4, 4), gen)
    assert len(calls) == 10 and calls[0] == 99 and 0 not in calls
    assert calls == sorted(set(calls), reverse=True)
    assert torch.equal(gen.get_state(), before)
    assert solver_sequence(100, 100) == list(range(99, -1, -1))
    assert timestep_sequence(10, 100)[-1] == 0  # DDIM's own sequence is unchanged


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_the_family_samples_with_it_reproducibly(steps):
    fam, _ = _gaussian_model(timesteps=50)
    a = fam.sample(3, seed=4, sampler="dpm-solver++", steps=steps)
    b = fam.sample(3, seed=4, sampler="dpm-solver++", steps=steps)
    assert a.shape == (3, 1, 4, 4) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
