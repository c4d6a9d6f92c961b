"""Train the edited-region localiser (zoo entry `photo-localiser`) on synthetic edits of the
training photos, and write its zoo entry.

Patches: `--patches` random `--size` crops of the Debian training photos
(`pixelsmith.data.photos.training_photos`, cut as `pixelsmith/data/patches.py` does), seed `--seed`.
Each becomes one training sample: 40% first go through a "camera" JPEG (quality 70-95), then one
sixth stay unedited (mask all zero) and the rest get one edit of the trained kinds (the zoo's
inpainter, harmonic, Telea, copy-move, splice from another patch, itself 40% camera-JPEG; never
the held-out `ns` and `biharmonic`) under a window of a mask drawn for twice the patch's side
(`patch_mask`), then half are saved as JPEG (quality 60-95). Training: AdamW, one-cycle learning
rate, pixel BCE (edited pixels weighted 2), random flips and quarter turns, one thread.
The last `VAL` samples are a validation split of the training photos (its pixel AUC is printed).

    .venv/bin/python scripts/train_localiser.py                     # ~15 min on one CPU thread
    .venv/bin/python scripts/train_localiser.py --record-bench      # results from the bench JSON

`--record-bench` re-writes the zoo entry with the hold-out numbers of
bench/results/forensics_localise.json (run `python bench/forensics_localise.py` first); with
`--from CKPT` it takes the weights, recipe and validation numbers of that checkpoint (a run
written elsewhere with `--zoo DIR`) instead of the shipped entry's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.data.patches import crop_patches, files_key  # noqa: E402
from pixelsmith.data.photos import (  # noqa: E402
    TRAIN_PACKAGES,
    describe_files,
    install_command,
    training_photos,
)
from pixelsmith.forensics.edits import (  # noqa: E402
    TRAINED_KINDS,
    make_edit,
    random_mask,
    save_jpeg,
)
from pixelsmith.forensics.localise import ZOO_NAME, LocaliserNet  # noqa: E402
from pixelsmith.utils.checkpoint_file import load_checkpoint  # noqa: E402
from pixelsmith.version import __version__  # noqa: E402
from pixelsmith.zoo import export_tensors  # noqa: E402
from pixelsmith.zoo import path as zoo_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "results" / "forensics_localise.json"
VAL = 300
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pixelsmith"
TASK = "edited-region localisation: which pixels of a photo were filled in or pasted"


def _camera(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """x, or 40% of the time x through a camera's JPEG (quality 70-95)."""
    return save_jpeg(x, int(rng.integers(70, 96))) if rng.random() < 0.4 else x


def patch_mask(h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """A window of a mask drawn for a canvas twice the patch's side, so that strokes and boxes
    are as wide in pixels as on a photo of about 200-500 px; covers 3-50% of the patch."""
    for _ in range(20):
        big = random_mask(2 * h, 2 * w, rng)
        y, x = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
        m = big[:, y : y + h, x : x + w]
        if 0.03 <= float(m.mean()) <= 0.5:
            return m
    return random_mask(h, w, rng)


def make_samples(patches: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One edited (uint8) image, its mask and its kind per patch (see the module doc)."""
    rng = np.random.default_rng(seed)
    photos = torch.from_numpy(patches).float() / 255
    images = np.empty_like(patches)
    masks = np.zeros((len(patches), 1, *patches.shape[2:]), np.uint8)
    kinds = []
    for i, x in enumerate(photos):
        x = _camera(x, rng)
        kind = "none" if rng.random() < 1 / 6 else str(rng.choice(TRAINED_KINDS))
        donor = _camera(photos[int(rng.integers(len(photos)))], rng) if kind == "splice" else None
        edited, mask = make_edit(x, kind, rng, donor=donor, mask=patch_mask(*x.shape[-2:], rng))
        if rng.random() < 0.5:
            edited = save_jpeg(edited, int(rng.integers(60, 96)))
        images[i] = (edited * 255).round().to(torch.uint8).numpy()
        masks[i] = mask.to(torch.uint8).numpy()
        kinds.append(kind)
        if (i + 1) % 500 == 0:
            print(f"  edits {i + 1}/{len(patches)}", flush=True)
    return images, masks, kinds


def _augment(x: torch.Tensor, m: torch.Tensor, g: torch.Generator) -> tuple:
    k = int(torch.randint(4, (1,), generator=g))
    x, m = torch.rot90(x, k, (2, 3)), torch.rot90(m, k, (2, 3))
    if torch.rand(1, generator=g) < 0.5:
        x, m = x.flip(3), m.flip(3)
    return x, m


def pixel_auc(net: LocaliserNet, images: np.ndarray, masks: np.ndarray) -> float:
    """Pooled pixel AUC of the net on uint8 images with their masks (sklearn)."""
    from sklearn.metrics import roc_auc_score

    net.eval()
    with torch.no_grad():
        probs = [
            torch.sigmoid(net(torch.from_numpy(images[i : i + 32]).float() / 255)).numpy()
            for i in range(0, len(images), 32)
        ]
    net.train()
    return float(roc_auc_score(masks.ravel(), np.concatenate(probs).ravel()))


def train(args: argparse.Namespace) -> tuple[LocaliserNet, dict[str, float]]:
    """The trained network and its validation AUCs on the training photos' split."""
    torch.manual_seed(args.seed)
    t0 = time.time()
    paths = training_photos()
    cache = CACHE / f"localiser-{files_key(paths, args.patches, args.size, args.seed, 2)}.npz"
    if cache.is_file():
        saved = np.load(cache)
        images, masks, kinds = saved["images"], saved["masks"], list(saved["kinds"])
        print(f"edited patches from {cache}", flush=True)
    else:
        patches = crop_patches(paths, args.patches, args.size, seed=args.seed)
        print(f"{len(patches)} patches of {args.size} px in {time.time() - t0:.0f} s", flush=True)
        images, masks, kinds = make_samples(patches, args.seed)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, masks=masks, kinds=np.array(kinds))
        print(f"edits done at {time.time() - t0:.0f} s (kept in {cache})", flush=True)
    tr_x, tr_m = torch.from_numpy(images[:-VAL]), torch.from_numpy(masks[:-VAL])
    net = LocaliserNet(args.width)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps)
    g = torch.Generator().manual_seed(args.seed)
    weight = torch.tensor(2.0)
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(tr_x), (args.batch,), generator=g)
        x, m = _augment(tr_x[idx].float() / 255, tr_m[idx].float(), g)
        loss = F.binary_cross_entropy_with_logits(net(x), m, pos_weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == 1:
            print(
                f"step {step}/{args.steps} loss {loss.item():.4f} {time.time() - t0:.0f} s",
                flush=True,
            )
    val_kinds = np.array(kinds[-VAL:])
    metrics = {}
    for kind in TRAINED_KINDS:
        sel = np.flatnonzero(val_kinds == kind)
        metrics[f"val_pixel_auc_{kind}"] = round(
            pixel_auc(net, images[-VAL:][sel], masks[-VAL:][sel]), 4
        )
    print(f"validation (training photos' split): {metrics}; {time.time() - t0:.0f} s", flush=True)
    return net.eval(), metrics


def _recipe(args: argparse.Namespace, command: str) -> dict:
    return {
        "command": command,
        "data": {
            "source": "photos",
            "packages": list(TRAIN_PACKAGES),
            "install": install_command(),
            "patches": f"{args.patches} random {args.size}x{args.size} patches, seed {args.seed} "
            "(pixelsmith/data/patches.py), edited by pixelsmith/forensics/edits.py",
            "edit_kinds": list(TRAINED_KINDS),
            "files": describe_files(training_photos()),
        },
        "hyperparameters": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "width": args.width,
        },
    }


def _bench_metrics() -> dict[str, float]:
    rows = json.loads(BENCH.read_text())["rows"]
    out = {}
    for r in rows:
        if r.get("pixel_auc") is not None:
            out[f"pixel_auc_{r['kind']}_{r['save']}"] = r["pixel_auc"]
        if r.get("f1_best") is not None:
            out[f"best_f1_{r['kind']}_{r['save']}"] = r["f1_best"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=4000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=850)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--record-bench", action="store_true", help="re-write the entry's results")
    ap.add_argument("--from", dest="source", type=Path, default=None, help="with --record-bench")
    ap.add_argument("--zoo", type=Path, default=None, help="zoo folder (default: the shipped one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.record_bench:
        tensors, manifest = load_checkpoint(args.source or zoo_path(ZOO_NAME, args.zoo))
        recipe = manifest["recipe"]
        metrics = {**manifest["validation"], **_bench_metrics()}
        command = "python bench/forensics_localise.py"
    else:
        net, metrics = train(args)
        tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
        flags = f"--patches {args.patches} --size {args.size} --steps {args.steps} "
        flags += f"--batch {args.batch} --lr {args.lr} --width {args.width} --seed {args.seed}"
        recipe = _recipe(args, f"python scripts/train_localiser.py {flags}")
        command = "python scripts/train_localiser.py (validation split of the training photos)"
        manifest = {"validation": metrics}
    out = export_tensors(
        name=ZOO_NAME,
        tensors=tensors,
        manifest={
            "family": "forensics",
            "preset": "localiser",
            "width": int(manifest.get("width", args.width)),
            "image_shape": [3, None, None],
            "pixelsmith_version": __version__,
            "validation": manifest["validation"],
            "recipe": recipe,
        },
        recipe=recipe,
        results={"metrics": metrics, "command": command},
        task=TASK,
        out_dir=args.zoo,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
