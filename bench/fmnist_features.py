"""Stand-in FID/KID feature network for Fashion-MNIST benchmarks, plus Frechet distance and KID.

STAND-IN: this module exists only until `pixelsmith.metrics` ships its own Fashion-MNIST
classifier (the metrics issue); benchmarks must then switch to that network and its hash, and
scores from this one are not comparable with scores from it.

The network is a small CNN (conv32-pool-conv64-pool-conv128-fc128-fc10, BatchNorm + ReLU) trained
deterministically on the Fashion-MNIST train split by a fixed recipe (`RECIPE`: seed, 2 epochs,
Adam, batch 128, deterministic algorithms, one thread since the bits depend on the thread
count) in two to three minutes. Its
weights are cached as safetensors under `bench/.cache/`, keyed by a hash of the recipe, and
reported with their sha256 and test accuracy. Features are the 128-d penultimate activations
(after BatchNorm and ReLU).

Resize rule: `features()` takes float images in [0, 1], shape (N, 1, H, W). 28x28 images are used
as they are; 32x32 images lose their 2-pixel border (a center crop, the exact inverse of the
zero padding by 2 that makes 32x32 Fashion-MNIST, as the plain DCGAN anchor trains on); any other
size is resized to 28x28 with bilinear interpolation, antialiased, align_corners=False. (Resizing
32x32 back instead would charge a 32x32 model for the blur of the round trip: real train images
taken 28->32->28 bilinearly score FID ~6 against the test split, against ~0.1 untouched.)

Run `python bench/fmnist_features.py` to build (or load) the network and print its accuracy and
hash; add `--selftest` to check `frechet_distance` against scipy.linalg.sqrtm and `kid` against a
direct computation.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FASHION_DIR = os.environ.get("PIXELSMITH_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SIZE = 28
FEATURE_DIM = 128
RESIZE_RULE = (
    "28x28 as is; 32x32 center-cropped to 28x28 (inverse of zero padding by 2); any other size "
    "resized to 28x28 (bilinear, antialias, align_corners=False)"
)
RECIPE: dict[str, object] = {
    "net": "fmnist-cnn-v1 conv32-pool-conv64-pool-conv128-fc128-fc10 bn relu",
    "data": "fashion-mnist train 60000",
    "normalize": [0.2860, 0.3530],
    "seed": 0,
    "epochs": 2,
    "batch": 128,
    "optimizer": "adam",
    "lr": 2e-3,
    "schedule": "linear decay to 0",
    "weight_decay": 0.0,
    "threads": 1,
    "deterministic": True,
}
FEATURE_NAME = "fmnist-cnn-v1 (bench stand-in), 128-d penultimate"


def load_fmnist(split: str) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST images (N, 28, 28) uint8 and labels (N,) int64 of 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    out = []
    for kind in ("images-idx3", "labels-idx1"):
        path = Path(FASHION_DIR) / f"{prefix}-{kind}-ubyte.gz"
        if not path.exists():
            path = path.with_suffix("")
        if not path.exists():
            sys.exit(f"{path}[.gz] is missing: install dataset-fashion-mnist")
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        arr = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
        out.append(torch.from_numpy(arr.copy()))
    return out[0], out[1].long()


class FashionCNN(nn.Module):
    """Small Fashion-MNIST classifier whose penultimate layer gives the features."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 128),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, FEATURE_DIM, bias=False),
            nn.BatchNorm1d(FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, 10)
        mean, std = RECIPE["normalize"]
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)

    def embed(self, x: Tensor) -> Tensor:
        """128-d features of images in [0, 1]."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


def recipe_key() -> str:
    """Short hash of the training recipe, naming the cached weights."""
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(verbose: bool = True) -> FashionCNN:
    """Train the network by RECIPE, deterministically."""
    images, labels = load_fmnist("train")
    x = images.unsqueeze(1).float() / 255
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(int(RECIPE["threads"]))  # results depend on the thread count
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # costs time, changes nothing
    try:
        torch.manual_seed(int(RECIPE["seed"]))
        net = FashionCNN()
        opt = torch.optim.Adam(net.parameters(), lr=float(RECIPE["lr"]))
        batch, epochs = int(RECIPE["batch"]), int(RECIPE["epochs"])
        per_epoch = (len(x) + batch - 1) // batch
        total = per_epoch * epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total)
        gen = torch.Generator().manual_seed(int(RECIPE["seed"]))
        net.train()
        t0, step = time.monotonic(), 0
        for epoch in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                loss = F.cross_entropy(net(x[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if verbose and (step % 100 == 0 or step == total):
                    print(
                        f"\rfeature net: epoch {epoch + 1}/{epochs} step {step}/{total} "
                        f"loss {loss.item():.3f} ({time.monotonic() - t0:.0f}s)",
                        end="",
                        file=sys.stderr,
                    )
        if verbose:
            print(file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    return net.eval()


@torch.no_grad()
def accuracy(net: FashionCNN) -> float:
    """Top-1 accuracy on the Fashion-MNIST test split."""
    images, labels = load_fmnist("test")
    x = images.unsqueeze(1).float() / 255
    pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == labels).float().mean().item()


_NET: FashionCNN | None = None
_CARD: dict[str, object] | None = None


def load_network(verbose: bool = True) -> tuple[FashionCNN, dict[str, object]]:
    """The feature network (trained once, then cached) and its card: recipe, hash, accuracy."""
    global _NET, _CARD
    if _NET is not None and _CARD is not None:
        return _NET, _CARD
    from safetensors.torch import load_file, save_file

    path = CACHE_DIR / f"fmnist-cnn-{recipe_key()}.safetensors"
    if path.exists():
        net = FashionCNN()
        net.load_state_dict(load_file(str(path)))
        net.eval()
    else:
        net = _train(verbose)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp), metadata={"recipe": json.dumps(RECIPE, sort_keys=True)})
        os.replace(tmp, path)
    card = {
        "name": FEATURE_NAME,
        "stand_in": "until pixelsmith.metrics ships its Fashion-MNIST classifier",
        "recipe": RECIPE,
        "recipe_key": recipe_key(),
        "weights": str(path.relative_to(CACHE_DIR.parent.parent)),
        "sha256": file_sha256(path),
        "test_accuracy": round(accuracy(net), 4),
        "resize_rule": RESIZE_RULE,
    }
    if verbose:
        print(
            f"feature net: test accuracy {card['test_accuracy']:.4f}, sha256 {card['sha256']}",
            file=sys.stderr,
        )
    _NET, _CARD = net, card
    return net, card


def to_28(images: Tensor) -> Tensor:
    """Apply the resize rule: images of any size to (N, 1, 28, 28)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(
            f"features() takes (N, 1, H, W) grayscale images, got {tuple(images.shape)}"
        )
    if images.shape[-2:] == (SIZE, SIZE):
        return images
    if images.shape[-2:] == (SIZE + 4, SIZE + 4):
        return images[:, :, 2:-2, 2:-2]
    return F.interpolate(
        images, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True
    )


@torch.no_grad()
def features(images: Tensor, batch: int = 500) -> Tensor:
    """128-d features (N, 128) of float images (N, 1, H, W) in [0, 1]."""
    net, _ = load_network(verbose=False)
    out = [
        net.embed(to_28(images[i : i + batch].float().cpu()).clamp(0, 1))
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out) if out else torch.empty(0, FEATURE_DIM)


def _np64(f: Tensor | np.ndarray) -> np.ndarray:
    return f.double().numpy() if isinstance(f, Tensor) else np.asarray(f, np.float64)


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(fa: Tensor | np.ndarray, fb: Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets, in float64."""
    a, b = _np64(fa), _np64(fb)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = _psd_sqrt(ca)
    m = s @ cb @ s
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel (x.y/d + 1)^3."""
    d, m, n = x.shape[1], len(x), len(y)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(
    fa: Tensor | np.ndarray,
    fb: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std of unbiased MMD^2 over random subsets."""
    a, b = _np64(fa), _np64(fb)
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    vals = [
        _mmd2_unbiased(
            a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals))


def selftest() -> None:
    """Check frechet_distance against scipy.linalg.sqrtm and kid against a direct computation."""
    from scipy import linalg

    rng = np.random.default_rng(0)
    for d, n in ((8, 200), (64, 500), (128, 300)):
        a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3
        b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + rng.normal(size=d)
        mu_a, mu_b = a.mean(0), b.mean(0)
        ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean = linalg.sqrtm(ca @ cb).real
        ref = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean)
        got = frechet_distance(a, b)
        assert abs(got - ref) <= 1e-6 * max(1.0, abs(ref)), (d, n, got, ref)
        assert abs(frechet_distance(a, a)) < 1e-6 * np.trace(ca), "FID(a, a) is not 0"
        print(f"fid  d={d:3d} n={n}: ours {got:.6f}  scipy.sqrtm {ref:.6f}  ok")
    # rank-deficient covariances (fewer samples than dims, as with post-ReLU dead units)
    a, b = rng.normal(size=(50, 128)), rng.normal(size=(50, 128)) + 0.1
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum()
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref += np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    got = frechet_distance(a, b)
    assert abs(got - ref) <= 1e-4 * abs(ref), (got, ref)
    print(f"fid  rank-deficient: ours {got:.6f}  scipy.sqrtm {ref:.6f}  ok")

    n = 30  # one subset of every row, so the estimate is the plain double sum
    x, y = rng.normal(size=(n, 5)), rng.normal(size=(n, 5)) + 0.5
    k = lambda p, q: (p @ q / 5 + 1) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
    ref = sxx + syy - 2 * sxy
    got, std = kid(x, y, subsets=1, subset_size=1000)
    assert abs(got - ref) < 1e-9 * max(1.0, abs(ref)) and std == 0.0, (got, ref)
    print(f"kid  direct sum: ours {got:.8f}  loops {ref:.8f}  ok")
    same, _ = kid(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)), subsets=20)
    diff, _ = kid(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)) + 0.3, subsets=20)
    assert abs(same) < 0.01 < diff, (same, diff)
    print(f"kid  same distribution {same:+.5f}, shifted {diff:.5f}  ok")

    img = torch.rand(3, 1, 28, 28)
    assert torch.equal(to_28(F.pad(img, (2, 2, 2, 2))), img) and torch.equal(to_28(img), img)
    big = to_28(torch.full((2, 1, 64, 48), 0.25))
    assert big.shape == (2, 1, 28, 28) and torch.allclose(big, torch.tensor(0.25))
    print("resize rule ok")


def main() -> None:
    """Build or load the feature network and print its card; --selftest checks the metrics."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selftest", action="store_true", help="check FID and KID implementations")
    args = ap.parse_args()
    if args.selftest:
        selftest()
    _, card = load_network()
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
