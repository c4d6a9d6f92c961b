"""Training checkpoints: everything a run needs to resume exactly, captured and restored.

Beside the weights (every network, EMA copies included) a training checkpoint holds the
optimisers' states, every random generator (torch, the per-batch stream, numpy, Python's, CUDA's),
the counters and the data position. Tensors go into the safetensors payload; the rest into the
manifest's "resume" entry, as JSON. The file format is `pixelsmith.utils.checkpoint_file`'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pixelsmith.models.base import Family
from pixelsmith.train.batches import Batches
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.rng import BatchRandom


@dataclass
class LoopState:
    """Counters that a checkpoint restores."""

    step: int = 0
    nimg: int = 0
    elapsed: float = 0.0


def capture(
    family: Family, rng: BatchRandom, device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON-able rest) of the networks, optimisers and random generators."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in family.networks.items():
        for k, v in net.state_dict().items():
            tensors[f"net/{name}/{k}"] = v
    opt_rest = {}
    for name, opt in family.optimizers.items():
        t, rest = optimizer_to_flat(opt, f"opt/{name}")
        tensors.update(t)
        opt_rest[name] = rest
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/batch"] = rng.get_state()
    np_state = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    if device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    py = random.getstate()
    rest = {
        "optimizers": opt_rest,
        "numpy_rng": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python_rng": [py[0], list(py[1]), py[2]],
    }
    return tensors, rest


def restore(
    tensors: dict[str, torch.Tensor],
    manifest: dict[str, Any],
    family: Family,
    rng: BatchRandom,
    batches: Batches,
    device: torch.device,
) -> LoopState:
    """Put a checkpoint's networks, optimisers, generators and data position back."""
    ckf.load_networks(family.networks, tensors)
    res = manifest["resume"]
    for name, opt in family.optimizers.items():
        optimizer_from_flat(opt, tensors, f"opt/{name}", res["optimizers"][name])
    torch.set_rng_state(tensors["rng/torch"])
    rng.set_state(tensors["rng/batch"])
    a, pos, has_g, cached = res["numpy_rng"]
    np.random.set_state((a, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_g, cached))
    v, st, g = res["python_rng"]
    random.setstate((v, tuple(st), g))
    if "rng/cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    batches.load_state(manifest["batches"])
    return LoopState(step=manifest["step"], nimg=manifest["nimg"], elapsed=manifest["elapsed_s"])


# ---- optimiser state as flat tensors + JSON -------------------------------------------------


def optimizer_to_flat(
    opt: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state_dict into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}/{idx}/{k}"] = v
            else:
                scalars[f"{idx}/{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    prefix: str,
    rest: dict,
    keep_settings: bool = True,
) -> None:
    """Inverse of optimizer_to_flat.

    With `keep_settings`, the optimiser's own hyper-parameters (lr, betas, ...: what the run's
    config asks for now) replace the saved ones, and only the saved state (moments, step counts)
    is restored: a resume with a lower learning rate then trains with it. An unchanged config
    sets the same values, so resuming stays exact.
    """
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "/"):
            idx, name = key[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(idx), {})[name] = v
    for key, v in rest["scalars"].items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = v
    wanted = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    if keep_settings:
        for group, settings in zip(opt.param_groups, wanted, strict=True):
            group.update(settings)
