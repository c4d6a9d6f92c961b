"""Meaningful directions in a generator's latent space, and moving codes along them.

- Label directions (InterFaceGAN): draw codes from the generator's prior, label their images with
  a classifier (pixelsmith's shipped Fashion-MNIST / MNIST networks by default), then take the
  difference of the two classes' mean codes ("mean") or the normal of a logistic regression that
  separates them ("linear").
- Unsupervised directions (GANSpace): principal components of W for StyleGAN. Principal
  components of a Gaussian z are arbitrary (its covariance is the identity), so for z the
  components are those of the generator's first-layer outputs, carried back to z by least squares
  (GANSpace's recipe for z-only generators).

A StyleGAN's directions live in W and move every layer of a W+ code alike. A direction's `scale`
is the standard deviation of the sample codes' projection on it: strength 1 moves a code by one
such standard deviation. Directions are cached per model (by its weights' hash) in the cache
folder (`pixelsmith.data.sources.cache_dir()`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pixelsmith.edit.latent.space import LatentSpace, latent_space
from pixelsmith.errors import UserError

METHODS = ("mean", "linear")
CACHE_VERSION = "1"
MIN_PER_CLASS = 10
Classify = Callable[[Tensor], Tensor]  # images (N, C, H, W) in [0, 1] -> probabilities (N, K)


@dataclass(frozen=True)
class Direction:
    """A unit vector in z or W, how far strength 1 moves along it, and how it was found."""

    vector: Tensor
    scale: float
    space: str
    method: str
    name: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Labeller:
    """A classifier of the model's images: probabilities, class names and an identity for caches."""

    classify: Classify
    classes: list[str]
    ident: str

    def class_id(self, token: str | int) -> int:
        """The index of a class given by index or name (case, spaces and punctuation ignored)."""
        text = str(token).strip()
        names = [_norm(c) for c in self.classes]
        if _norm(text) in names:
            return names.index(_norm(text))
        if text.isdigit() and int(text) < len(self.classes):
            return int(text)
        raise UserError(
            f"no class {text!r}: the classes are {', '.join(self.classes)} "
            f"(or indices 0-{len(self.classes) - 1})"
        )


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


# ---------------------------------------------------------------- the space directions live in


def base_space(space: LatentSpace) -> LatentSpace:
    """The space directions are found and applied in, as the family declares it: W for
    StyleGAN's W and W+ codes, z for a GAN's or a VAE's."""
    where = space.spec.directions
    if where:
        return space if where == space.kind else latent_space(space.model, where)
    model = space.model
    ok = [k for k in model.latent_spaces if model.latent_spec(k).directions]
    if not ok:
        raise UserError(f"a {model.name} model has no directions to move its codes along")
    home = model.latent_spec(ok[0]).directions
    raise UserError(
        f"a {model.name} model's directions live in {home.upper()}: use the {' or '.join(ok)} "
        f"space, not {space.kind} (--space {ok[0]})"
    )


def apply(codes: Tensor, direction: Direction, strength: float) -> Tensor:
    """codes + strength * scale * vector (every layer of W+ codes alike); strength 0 returns the
    codes unchanged."""
    if codes.shape[-1] != direction.vector.shape[-1]:
        raise UserError(
            f"a direction in a {direction.vector.shape[-1]}-d space cannot move codes of width "
            f"{codes.shape[-1]}"
        )
    if strength == 0:
        return codes.clone()
    step = direction.vector.to(codes.device, codes.dtype) * (float(strength) * direction.scale)
    return codes + step


def apply_in(space: LatentSpace, codes: Tensor, direction: Direction, strength: float) -> Tensor:
    """`apply` after checking that the codes are the space's and the direction fits it."""
    codes = space.check(codes)
    if direction.space != space.spec.directions:
        raise UserError(f"a direction in {direction.space} cannot move {space.kind} codes")
    return apply(codes, direction, strength)


# ---------------------------------------------------------------- the estimators


def _unit(v: Tensor) -> Tensor:
    n = v.norm()
    if not n > 0:
        raise UserError("the two classes have the same mean code: no direction separates them")
    return v / n


def _two_classes(codes: Tensor, labels: Tensor, a: int, b: int) -> tuple[Tensor, Tensor]:
    xa, xb = codes[labels == a], codes[labels == b]
    if min(len(xa), len(xb)) < 2:
        raise UserError(
            f"only {len(xa)} and {len(xb)} codes of the two classes: a direction needs at least "
            "2 of each"
        )
    return xa, xb


def mean_difference(codes: Tensor, labels: Tensor, a: int, b: int) -> Tensor:
    """The unit vector from class a's mean code to class b's."""
    xa, xb = _two_classes(codes.double(), labels, a, b)
    return _unit(xb.mean(0) - xa.mean(0)).float()


def linear_normal(
    codes: Tensor, labels: Tensor, a: int, b: int, steps: int = 300, l2: float = 1e-3
) -> tuple[Tensor, float]:
    """The unit normal of a logistic regression telling class b (positive side) from class a,
    in the codes' own coordinates, and its training accuracy.

    The codes are standardised per coordinate for the fit (full-batch L-BFGS, class-balanced
    loss, L2 penalty `l2`); the normal is mapped back through the standardisation.
    """
    xa, xb = _two_classes(codes.double(), labels, a, b)
    x = torch.cat([xa, xb])
    y = torch.cat([torch.zeros(len(xa)), torch.ones(len(xb))]).double()
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    weight = torch.where(y > 0, len(x) / (2 * len(xb)), len(x) / (2 * len(xa)))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, bias], lr=1, max_iter=steps, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(xs @ w + bias, y, weight=weight)
        loss = loss + l2 * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = w.detach()
    accuracy = float((((xs @ w + bias.detach()) > 0).double() == y).double().mean())
    return _unit(w / sd).float(), accuracy


def pca(codes: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The top k principal directions (k, D) of codes (N, D) and their variances (k,).

    Signs are fixed so that each component's largest-magnitude entry is positive.
    """
    if not 1 <= k <= min(codes.shape):
        raise UserError(f"PCA of {tuple(codes.shape)} codes gives 1-{min(codes.shape)} components")
    x = codes.double() - codes.double().mean(0)
    if x.shape[1] > 2 * x.shape[0]:  # wide (e.g. feature maps): the N x N Gram matrix is cheaper
        evals, u = torch.linalg.eigh(x @ x.T)
        evals, u = evals.flip(0)[:k].clamp_min(0), u.flip(1)[:, :k]
        s = evals.sqrt()
        comp = (x.T @ u / s.clamp_min(1e-300)).T
    else:
        _, s, vh = torch.linalg.svd(x, full_matrices=False)
        comp = vh[:k]
    sign = torch.sign(comp.gather(1, comp.abs().argmax(1, keepdim=True)))
    return (comp * sign).float(), (s[:k].square() / (len(x) - 1)).float()


def _scale(codes: Tensor, vector: Tensor) -> float:
    return float((codes.double() @ vector.double()).std())


# ---------------------------------------------------------------- labelling the model's images


def _data_source(space: LatentSpace) -> str | None:
    man = space.model.manifest or {}
    return (man.get("data") or {}).get("name") or (
        ((man.get("config") or {}).get("data") or {}).get("source")
    )


def shipped_labeller(space: LatentSpace) -> Labeller:
    """The shipped classifier of the model's data (Fashion-MNIST or MNIST), or UserError."""
    from pixelsmith.data.sources import FASHION_MNIST_CLASSES
    from pixelsmith.metrics.features import FOR_SOURCE, SHIPPED, feature_net

    source = _data_source(space)
    if source not in FOR_SOURCE:
        raise UserError(
            f"label directions need a classifier of the model's images; pixelsmith ships one "
            f"for {' and '.join(FOR_SOURCE)}, and this model was trained on "
            f"{source or 'unrecorded data'}: use PCA directions (--pca) instead"
        )
    name = FOR_SOURCE[source]
    classes = (
        list(FASHION_MNIST_CLASSES) if source == "fashion-mnist" else [str(i) for i in range(10)]
    )
    state: dict[str, Any] = {}

    def classify(images: Tensor) -> Tensor:
        if "net" not in state:
            state["net"] = feature_net(name)
        _, logits = state["net"](images.cpu())
        return logits.float().softmax(1)

    return Labeller(classify, classes, f"{name}:{SHIPPED[name][1]}")


def label_images(classify: Classify, images: Tensor, batch: int = 500) -> Tensor:
    """Class probabilities of images, in batches."""
    out = [classify(images[i : i + batch]) for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.empty(0)


# ---------------------------------------------------------------- cache


def model_hash(space: LatentSpace) -> str:
    """The model's weights' hash: its checkpoint's payload hash, else one over its generator."""
    sha = (space.model.manifest or {}).get("payload_sha256")
    if sha:
        return str(sha)
    from pixelsmith.utils.checkpoint_file import payload_hash

    return payload_hash(space.model.inference_net().state_dict())


def _cache_path(space: LatentSpace, key: dict[str, Any]) -> Path:
    from pixelsmith.data.sources import cache_dir

    text = json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return cache_dir() / "directions" / f"{model_hash(space)[:16]}-{digest}.safetensors"


def _load_cached(path: Path) -> list[Direction] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["directions"])
            vectors = f.get_tensor("vectors")
    except Exception:  # absent, unreadable or corrupt: recompute
        return None
    return [
        Direction(vectors[i].clone(), m["scale"], m["space"], m["method"], m["name"], m["info"])
        for i, m in enumerate(meta)
    ]


def _store(path: Path, directions: list[Direction]) -> None:
    from safetensors.torch import save

    from pixelsmith.utils.files import atomic_write_bytes

    meta = [
        {"scale": d.scale, "space": d.space, "method": d.method, "name": d.name, "info": d.info}
        for d in directions
    ]
    data = save(
        {"vectors": torch.stack([d.vector.cpu() for d in directions]).contiguous()},
        metadata={"directions": json.dumps(meta)},
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError:  # a cache that cannot be written is only slower next time
        pass


def _cached(
    space: LatentSpace, key: dict[str, Any], cache: bool, compute: Callable[[], list[Direction]]
) -> list[Direction]:
    path = _cache_path(space, key) if cache else None
    if path is not None and (hit := _load_cached(path)) is not None:
        return hit
    found = compute()
    if path is not None:
        _store(path, found)
    return found


# ---------------------------------------------------------------- finding directions


def check_method(method: str) -> str:
    """A label-direction method name, or UserError."""
    if method not in METHODS:
        raise UserError(f"direction method {method!r} is not one of {', '.join(METHODS)}")
    return method


def check_samples(n: int) -> int:
    """A sample count for finding directions, or UserError."""
    if not isinstance(n, int) or n < 2 * MIN_PER_CLASS:
        raise UserError(f"finding a direction needs at least {2 * MIN_PER_CLASS} samples, got {n}")
    return n


def label_direction(
    space: LatentSpace,
    source: str | int,
    target: str | int,
    method: str = "linear",
    n: int = 2000,
    seed: int = 0,
    labeller: Labeller | None = None,
    cache: bool = True,
) -> Direction:
    """The direction from class `source` to class `target` (by index or name) in the space the
    family keeps its directions in (`base_space`: W for StyleGAN, else z): n prior codes,
    labelled by the classifier's most likely class, then the class-mean difference ("mean") or
    a logistic regression's normal ("linear")."""
    check_method(method)
    check_samples(n)
    if space.classes:
        raise UserError(
            "a conditional model takes its class as an input: draw another class with --labels "
            "(pixelsmith sample) instead of moving along a label direction"
        )
    base = base_space(space)
    labeller = labeller or shipped_labeller(space)
    a, b = labeller.class_id(source), labeller.class_id(target)
    if a == b:
        raise UserError(f"--from and --to name the same class ({labeller.classes[a]})")
    key = {"kind": "label", "a": a, "b": b, "method": method, "n": n, "seed": seed}
    key |= {"space": base.kind, "labeller": labeller.ident}

    def compute() -> list[Direction]:
        codes = base.random(n, seed).cpu()
        probs = label_images(labeller.classify, base.images(codes))
        labels = probs.argmax(1)
        counts = [int((labels == c).sum()) for c in (a, b)]
        if min(counts) < MIN_PER_CLASS:
            names = [labeller.classes[c] for c in (a, b)]
            raise UserError(
                f"of {n} samples the classifier called {counts[0]} {names[0]} and {counts[1]} "
                f"{names[1]}; a direction needs {MIN_PER_CLASS} of each: sample more (--samples) "
                "or pick classes the generator draws"
            )
        info: dict[str, Any] = {"samples": n, "seed": seed, "counts": counts}
        if method == "mean":
            vector = mean_difference(codes, labels, a, b)
        else:
            vector, acc = linear_normal(codes, labels, a, b)
            info["train_accuracy"] = acc
        name = f"{labeller.classes[a]} -> {labeller.classes[b]}"
        return [Direction(vector, _scale(codes, vector), base.kind, method, name, info)]

    return _cached(space, key, cache, compute)[0]


class _FirstOutput:
    """Records the output of the first leaf module (not an embedding) that a forward pass runs."""

    def __init__(self, net: nn.Module):
        self.out: Tensor | None = None
        self.handles = [
            m.register_forward_hook(self._hook)
            for m in net.modules()
            if not list(m.children()) and not isinstance(m, nn.Embedding)
        ]

    def _hook(self, module: nn.Module, args: Any, output: Tensor) -> None:
        if self.out is None:
            self.out = output.detach()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def first_layer_outputs(space: LatentSpace, codes: Tensor, batch: int = 500) -> Tensor:
    """The generator's first layer's outputs (N, F) for codes (a conditional model: class 0)."""
    net = space.model.inference_net()
    rows = []
    for i in range(0, len(codes), batch):
        c = codes[i : i + batch].to(space.device)
        labels = torch.zeros(len(c), dtype=torch.long, device=space.device)
        rec = _FirstOutput(net)
        try:
            space.render(c, labels if space.classes else None)
        finally:
            rec.close()
        if rec.out is None:
            raise UserError("the generator ran no layer to take features from")
        rows.append(rec.out.reshape(len(c), -1).cpu())
    return torch.cat(rows)


def pca_directions(
    space: LatentSpace, k: int, n: int = 2000, seed: int = 0, cache: bool = True
) -> list[Direction]:
    """The top k GANSpace directions: principal components of a mapped space's codes (W for
    StyleGAN), or of the first layer's outputs carried back to z by least squares (Gaussian
    z-space generators)."""
    check_samples(n)
    base = base_space(space)
    if not isinstance(k, int) or not 1 <= k <= base.dim:
        raise UserError(f"--pca takes 1 to {base.dim} components (the code width), got {k}")
    key = {"kind": "pca", "k": k, "n": n, "seed": seed, "space": base.kind}

    def compute() -> list[Direction]:
        codes = base.random(n, seed).cpu()
        if base.kind != "z":  # mapped codes (W): their own components
            comps, var = pca(codes, k)
            info = {"explained": (var / codes.double().var(0).sum()).tolist()}
            via = "PCA of W"
        else:
            feats = first_layer_outputs(base, codes)
            if k > min(feats.shape):
                raise UserError(f"the first layer's outputs give at most {min(feats.shape)} PCs")
            fc, var = pca(feats, k)
            coeff = (feats.double() - feats.double().mean(0)) @ fc.double().T  # (N, k)
            sol = torch.linalg.lstsq(coeff, codes.double() - codes.double().mean(0)).solution
            comps = sol.float()  # (k, dim): the z change per unit of each component
            info = {"explained": (var / feats.double().var(0).sum()).tolist()}
            via = "PCA of the first layer's outputs, regressed onto z"
        out = []
        for i in range(k):
            v = _unit(comps[i].double()).float()
            meta = {"samples": n, "seed": seed, "component": i, "via": via}
            meta["explained"] = info["explained"][i]
            out.append(Direction(v, _scale(codes, v), base.kind, "pca", f"PC{i}", meta))
        return out

    return _cached(space, key, cache, compute)
