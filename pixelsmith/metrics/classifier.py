"""pixelsmith's own small classifiers for Fashion-MNIST and MNIST, and their recorded recipe.

They exist because no pretrained network for these datasets can be fetched offline. Their
penultimate activations are the features for FID, KID and precision/recall, and their logits give
the Inception Score. The weights ship inside the package (`metrics/weights/`) with a sha256; the
recipe that made them is stored in each file's header and re-runs with
`pixelsmith train feature-net --data fashion-mnist`. The network is the classifier family's
(`pixelsmith.models.classifier.SmallCNN`), at its defaults; this loop, not the engine, makes them,
so that the shipped bits stay reproducible. Bits depend on the thread count and the CPU's
instruction set, so the recipe pins the threads; the result on another CPU is a different (equally
valid) network with a different hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.models.classifier import FEATURE_DIM, SmallCNN

# SmallCNN and FEATURE_DIM are re-exported: callers of the metrics keep importing them here.
__all__ = [
    "FEATURE_DIM",
    "RECIPES",
    "SIZE",
    "WEIGHTS_DIR",
    "Recipe",
    "SmallCNN",
    "accuracy",
    "load_classifier",
    "save_classifier",
    "train_classifier",
]

SIZE = 28
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a classifier's weights, given torch and the CPU."""

    data: str
    name: str
    seed: int = 0
    epochs: int = 15
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    flip: bool = True
    shift: int = 2
    dropout: float = 0.3
    threads: int = 1
    train_limit: int | None = None
    net: str = "cnn-v1 c32-p-c64-p-c128-fc128(bn,relu)-drop-fc"


RECIPES: dict[str, Recipe] = {
    "fashion-mnist": Recipe(data="fashion-mnist", name="fmnist-cnn-v1"),
    # Digits are not mirror-symmetric; the 4,500-image subset needs more passes.
    "mnist": Recipe(data="mnist", name="mnist-cnn-v1", flip=False, epochs=30, batch=64),
}


def _load_split(data: str, split: str) -> tuple[Tensor, Tensor]:
    from pixelsmith.data.sources import load_images

    s = load_images(data, split=split, channels=1, size=SIZE)
    if s.labels is None:
        raise UserError(f"{data} has no labels; a classifier needs a labelled source")
    return s.images, s.labels.long()


def _augment(x: Tensor, r: Recipe, g: torch.Generator) -> Tensor:
    """Random shifts (zero padding) and, if the recipe allows, horizontal flips."""
    n = x.shape[0]
    if r.flip:
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if r.shift:
        p = r.shift
        padded = F.pad(x, (p, p, p, p))
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(SIZE)[None]).view(n, 1, SIZE, 1)
        cols = (dx[:, None] + torch.arange(SIZE)[None]).view(n, 1, 1, SIZE)
        idx_rows = rows.expand(n, 1, SIZE, SIZE + 2 * p)
        x = padded.gather(2, idx_rows).gather(3, cols.expand(n, 1, SIZE, SIZE))
    return x


@torch.no_grad()
def accuracy(net: SmallCNN, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy on uint8 (N, 1, 28, 28) images."""
    net.eval()
    right = 0
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float() / 255
        right += int((net(x).argmax(1) == labels[i : i + batch]).sum())
    return right / len(images)


def train_classifier(
    data: str = "fashion-mnist",
    epochs: int | None = None,
    log: Callable[[str], None] = print,
    recipe: Recipe | None = None,
) -> tuple[SmallCNN, dict[str, Any]]:
    """Train a classifier by its recipe; returns the network and a record (recipe, accuracy)."""
    if recipe is None:
        if data not in RECIPES:
            raise UserError(f"no classifier recipe for {data!r}; choose from {sorted(RECIPES)}")
        recipe = RECIPES[data]
    if epochs is not None:
        recipe = Recipe(**{**asdict(recipe), "epochs": epochs})
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    try:
        train_x, train_y = _load_split(recipe.data, "train")
        train_x, train_y = train_x[: recipe.train_limit], train_y[: recipe.train_limit]
        test_x, test_y = _load_split(recipe.data, "test")
        classes = int(train_y.max()) + 1
        net = SmallCNN(classes, recipe.dropout)
        xs = train_x.float() / 255
        net.mean.fill_(float(xs.mean()))
        net.std.fill_(float(xs.std()))
        g = torch.Generator().manual_seed(recipe.seed)
        opt = torch.optim.AdamW(
            net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True
        )
        per_epoch = len(xs) // recipe.batch
        total = per_epoch * recipe.epochs
        warm = max(1, int(recipe.warmup_epochs * per_epoch))

        def lr_at(step: int) -> float:
            if step < warm:
                return recipe.lr * (step + 1) / warm
            t = (step - warm) / max(1, total - warm)
            return recipe.lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * t)).item())

        step, t0 = 0, time.time()
        for epoch in range(recipe.epochs):
            net.train()
            order = torch.randperm(len(xs), generator=g)
            loss_sum = 0.0
            for b in range(per_epoch):
                idx = order[b * recipe.batch : (b + 1) * recipe.batch]
                x = _augment(xs[idx], recipe, g)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                loss = F.cross_entropy(net(x), train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item()
                step += 1
            acc = accuracy(net, test_x, test_y)
            log(
                f"epoch {epoch + 1}/{recipe.epochs}  loss {loss_sum / per_epoch:.4f}  "
                f"test acc {acc:.4f}  {time.time() - t0:.0f}s"
            )
        net.eval()
        record = {
            "recipe": asdict(recipe),
            "test_accuracy": accuracy(net, test_x, test_y),
            "test_n": len(test_x),
            "classes": classes,
            "torch": torch.__version__,
            "seconds": round(time.time() - t0, 1),
        }
        return net, record
    finally:
        torch.set_num_threads(threads)


def save_classifier(net: SmallCNN, record: dict[str, Any], path: str | Path) -> str:
    """Write weights and record as safetensors; returns the file's sha256."""
    from safetensors.torch import save as st_save

    from pixelsmith.utils.files import atomic_write_bytes

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    blob = st_save(state, metadata={"pixelsmith.classifier": json.dumps(record, sort_keys=True)})
    atomic_write_bytes(Path(path), blob)
    return hashlib.sha256(blob).hexdigest()


def load_classifier(path: str | Path) -> tuple[SmallCNN, dict[str, Any]]:
    """Load a classifier written by `save_classifier` (no pickle)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "pixelsmith.classifier" not in meta:
        raise UserError(f"{path} is not a pixelsmith classifier file")
    record = json.loads(meta["pixelsmith.classifier"])
    net = SmallCNN(int(record["classes"]), float(record["recipe"]["dropout"]))
    net.load_state_dict(load_file(str(path)))
    return net.eval(), record
