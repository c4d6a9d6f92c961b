"""Is a small image generated? A CNN detector and a frequency baseline, for 28x28 grey images.

The detector follows Wang et al. (2020), "CNN-generated images are surprisingly easy to spot...
for now": a binary classifier trained on real images against the samples of several
generators, with Gaussian blur and JPEG augmentation (each with probability 0.5) so that it
does not lean on traces a re-encoding erases. It is small and keeps full resolution in its
first layers, because at 28x28 the generators' traces sit in the finest frequencies.

Two linear detectors stand beside it, both a logistic regression fitted with L-BFGS (scikit-learn
is not a dependency of the package): the frequency baseline of Frank et al. (2020), "Leveraging
frequency analysis for deep fake image recognition", on the log magnitude of each image's 2-D
DCT; and a probe on the features of a network that never saw a generated image (Ojha et al.
2023, "Towards universal fake image detectors...", who probe CLIP's features; here the metrics'
Fashion-MNIST classifier).

Images are float tensors in [0, 1], (N, 1, 28, 28), on 1/255 levels like the files they come
from: fakes must be quantised to 8 bits before training, or the detector learns the rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.data import degrade
from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom

SIZE = 28
ZOO_NAME = "fmnist-detector"
# Wang et al.'s "Blur+JPEG (0.5)": each op fires with this probability; ranges scaled to 28x28.
AUG_P = 0.5
BLUR_SIGMA = (0.0, 1.0)
JPEG_QUALITY = (30, 100)


class DetectorNet(nn.Module):
    """Six 3x3 convolutions (two at full resolution, then stride 2 twice), global average pooling
    and one logit: positive means generated."""

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width

        def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *conv(channels, w),
            *conv(w, w),
            *conv(w, 2 * w, 2),
            *conv(2 * w, 2 * w),
            *conv(2 * w, 4 * w, 2),
            *conv(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N,) of images in [0, 1]."""
        return self.head(self.body(x * 2 - 1)).squeeze(1)


def quantise(x: Tensor) -> Tensor:
    """Images on 1/255 levels, as a PNG of them would hold."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def augment_blur_jpeg(x: Tensor, rng: BatchRandom) -> Tensor:
    """Blur with sigma uniform in BLUR_SIGMA, then JPEG at a quality uniform in JPEG_QUALITY,
    each for a random half of the batch (Wang et al.'s training augmentation)."""
    u = rng.rand(x.shape[0], 4)
    sigma = (BLUR_SIGMA[0] + u[:, 1] * (BLUR_SIGMA[1] - BLUR_SIGMA[0])) * (u[:, 0] < AUG_P)
    x = degrade.gaussian_blur(x, sigma.to(torch.float64))
    fire = u[:, 2] < AUG_P
    if bool(fire.any()):
        lo, hi = JPEG_QUALITY
        q = (lo + torch.floor(u[:, 3] * (hi - lo + 1))).clamp(max=hi).to(torch.int64)
        x = x.clone()
        x[fire] = degrade.jpeg(x[fire], q[fire])
    return quantise(x)


@dataclass
class TrainReport:
    """What training did: steps, the final loss (moving average) and seconds."""

    steps: int
    loss: float
    seconds: float


def train_detector(
    real: Tensor,
    fakes: Tensor,
    steps: int = 1200,
    batch: int = 64,
    seed: int = 0,
    lr: float = 2e-3,
    width: int = 16,
    augment: bool = True,
    progress: bool = False,
) -> tuple[DetectorNet, TrainReport]:
    """Train a DetectorNet on balanced batches of `real` and `fakes` (N, 1, 28, 28) in [0, 1]."""
    import time

    _check_images(real, "real images")
    _check_images(fakes, "generated images")
    torch.manual_seed(seed)
    net = DetectorNet(real.shape[1], width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = BatchRandom(seed)
    gen = torch.Generator().manual_seed(seed)
    half = batch // 2
    target = torch.cat([torch.zeros(half), torch.ones(half)])
    avg, start = math.nan, time.perf_counter()
    net.train()
    for step in range(steps):
        xr = real[torch.randint(len(real), (half,), generator=gen)]
        xf = fakes[torch.randint(len(fakes), (half,), generator=gen)]
        x = torch.cat([xr, xf])
        if augment:
            x = augment_blur_jpeg(x, rng)
        loss = F.binary_cross_entropy_with_logits(net(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        avg = value if math.isnan(avg) else 0.98 * avg + 0.02 * value
        if progress and (step + 1) % 250 == 0:
            print(f"  step {step + 1}/{steps}  loss {avg:.4f}", flush=True)
    net.eval()
    return net, TrainReport(steps, avg, time.perf_counter() - start)


@torch.no_grad()
def scores(net: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    """The probability that each image is generated, (N,)."""
    net.eval()
    out = [torch.sigmoid(net(x[i : i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.empty(0)


def _check_images(x: Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != (SIZE, SIZE) or len(x) == 0:
        raise UserError(
            f"the {what} must be a batch of 1x{SIZE}x{SIZE} images, got {tuple(x.shape)}"
        )


# ---- the frequency baseline ------------------------------------------------------------------


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II matrix D (n, n): D @ v is the DCT of v."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def dct_features(x: Tensor) -> Tensor:
    """log(|DCT2| + 1e-3) of each image's luma, flattened: (N, H*W)."""
    d = dct_matrix(x.shape[-1]).to(x.dtype)
    e = dct_matrix(x.shape[-2]).to(x.dtype)
    coeffs = e @ x.mean(1) @ d.T
    return torch.log(coeffs.abs() + 1e-3).flatten(1)


class LinearDetector:
    """Logistic regression on standardised features of the images, classes weighted equally."""

    def __init__(self, features: Callable[[Tensor], Tensor], l2: float = 1e-3) -> None:
        self.features, self.l2 = features, l2
        self.module: nn.Module | None = None  # the features as a module, where there is one
        self.mean = self.std = self.w = None
        self.b = torch.zeros(())

    def fit(self, real: Tensor, fakes: Tensor, iters: int = 200) -> LinearDetector:
        """Fit on real (label 0) and generated (label 1) images."""
        f = torch.cat([self.features(real), self.features(fakes)]).double()
        y = torch.cat([torch.zeros(len(real)), torch.ones(len(fakes))]).double()
        weight = torch.where(y > 0, 0.5 / len(fakes), 0.5 / len(real))
        self.mean, self.std = f.mean(0), f.std(0).clamp_min(1e-6)
        z = (f - self.mean) / self.std
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            logits = z @ w + b
            loss = (weight * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum()
            loss = loss + self.l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w, self.b = w.detach(), b.detach()
        return self

    def scores(self, x: Tensor) -> Tensor:
        """The probability that each image is generated, (N,)."""
        if self.w is None:
            raise RuntimeError("fit the detector before scoring")
        z = (self.features(x).double() - self.mean) / self.std
        return torch.sigmoid(z @ self.w + self.b).float()


def frequency_baseline(l2: float = 1e-3) -> LinearDetector:
    """Frank et al. (2020): logistic regression on DCT log magnitudes."""
    return LinearDetector(lambda x: dct_features(x.double()), l2)


class ClassifierFeatures(nn.Module):
    """The 128-d features of the metrics' shipped Fashion-MNIST classifier, frozen; its file is
    checked against the sha256 the metrics ship it with."""

    def __init__(self) -> None:
        super().__init__()
        from pixelsmith.metrics.classifier import WEIGHTS_DIR, load_classifier
        from pixelsmith.metrics.features import SHIPPED
        from pixelsmith.utils.files import sha256_file

        file, sha, _ = SHIPPED["fmnist"]
        if sha256_file(WEIGHTS_DIR / file) != sha:
            raise UserError(f"{WEIGHTS_DIR / file} is damaged; reinstall pixelsmith")
        self.net = load_classifier(WEIGHTS_DIR / file)[0].requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 128) features of (N, 1, 28, 28) images in [0, 1]."""
        return self.net.embed(x)


class LinearHead(nn.Module):
    """A fitted LinearDetector on a features module, as logits (differentiable, for attacks)."""

    def __init__(self, features: nn.Module, w: Tensor, b: Tensor, mean: Tensor, std: Tensor):
        super().__init__()
        self.features = features
        for name, t in (("w", w), ("b", b), ("mean", mean), ("std", std)):
            self.register_buffer(name, t.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N,)."""
        return ((self.features(x) - self.mean) / self.std) @ self.w + self.b


class MeanOfProbabilities(nn.Module):
    """Detectors averaged in probability, returned as the logit of the mean."""

    def __init__(self, *members: nn.Module) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N,)."""
        p = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(0)
        return torch.logit(p.clamp(1e-7, 1 - 1e-7))


def feature_probe(l2: float = 1e-3) -> LinearDetector:
    """Ojha et al. (2023)'s idea at 28x28: a linear probe on the features of a network that
    never saw a generated image (the metrics' shipped Fashion-MNIST classifier, 128-d)."""
    features = ClassifierFeatures().eval()

    def extract(x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cat([features(x[i : i + 1024].float()) for i in range(0, len(x), 1024)])

    probe = LinearDetector(extract, l2)
    probe.module = features
    return probe


def probe_head(probe: LinearDetector) -> LinearHead:
    """A fitted feature probe as a module."""
    return LinearHead(probe.module, probe.w, probe.b, probe.mean, probe.std).eval()


# ---- the shipped detector --------------------------------------------------------------------


@dataclass
class Detector:
    """The shipped detector (a module giving logits) with its zoo name and the families it was
    trained against."""

    net: nn.Module
    name: str
    families: list[str]

    def probability(self, image: Tensor) -> tuple[float, str]:
        """P(generated) of one (C, H, W) image in [0, 1], and how it was prepared: grey (luma)
        and, when it is not 28x28, resized (the detector has seen only 28x28 images)."""
        x = image[None].float()
        note = []
        if x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            note.append("luma")
        if tuple(x.shape[-2:]) != (SIZE, SIZE):
            h, w = x.shape[-2:]
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True)
            note.append(f"resized from {w}x{h}")
        return float(scores(self.net, quantise(x))[0]), ", ".join(note) or "as is"


def detector_tensors(cnn: DetectorNet, probe: LinearDetector | None) -> dict[str, Tensor]:
    """What the zoo file holds: the CNN (`net/`) and the probe's fitted weights (`probe/`)."""
    out = {f"net/{k}": v for k, v in cnn.state_dict().items()}
    if probe is not None:
        out.update({f"probe/{k}": getattr(probe, k).float() for k in ("w", "b", "mean", "std")})
    return out


def load_detector(name: str = ZOO_NAME) -> Detector:
    """The generated-image detector shipped in the zoo as `name`: the CNN, averaged with the
    feature probe when the file holds one."""
    from pixelsmith import zoo
    from pixelsmith.utils.checkpoint_file import load_checkpoint

    e = zoo.entry(name)
    if e.family != "forensics" or e.preset != "generated-detector":
        raise UserError(f"zoo model {e.name} is a {e.family} model, not a generated-image detector")
    tensors, man = load_checkpoint(zoo.path(name))
    cnn = DetectorNet(int(man["image_shape"][0]), int(man["width"]))
    cnn.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net/")})
    net: nn.Module = cnn
    if "probe/w" in tensors:
        p = {k[6:]: v for k, v in tensors.items() if k.startswith("probe/")}
        net = MeanOfProbabilities(cnn, LinearHead(ClassifierFeatures(), **p))
    return Detector(net.eval(), f"zoo:{e.name}", list(man.get("families", [])))
