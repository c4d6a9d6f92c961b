"""The latent-editing figures of the docs, from the Fashion-MNIST GAN and StyleGAN.

    python scripts/latent_figure.py [--stylegan RUN|zoo:NAME] [--out docs]

- latent_interpolation.png: rows of 10-step paths, three in z for zoo:fmnist-gan (slerp), three
  in W for the StyleGAN (lerp); the first and last image of each row are the seeds' own samples.
- latent_interpolation.webp: the StyleGAN touring four seeds in W (12 frames a leg, looping).
- latent_directions.png: StyleGAN label directions, in column blocks of strengths 0, 1, 2, 3:
  sneaker -> ankle boot, shirt -> T-shirt/top, pullover -> coat; rows: two held-out samples of
  the source class, each by the mean-difference direction then the linear normal.
- latent_mixing.png: StyleGAN mixing grid, coarse styles from the rows (two seeds and two real
  Fashion-MNIST test images, inverted into W+), fine styles from the columns (three seeds and one
  inverted real image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pixelsmith.edit.latent import latent_space
from pixelsmith.edit.latent.directions import apply, label_direction, label_images, shipped_labeller
from pixelsmith.edit.latent.interpolate import interpolate, write_animation
from pixelsmith.edit.latent.mixing import mix_grid
from pixelsmith.generate import load_model
from pixelsmith.imageio import make_grid, save_image

ROOT = Path(__file__).resolve().parents[1]
SCALE = 3
PAIRS = [("Sneaker", "Ankle boot"), ("Shirt", "T-shirt/top"), ("Pullover", "Coat")]


def _stylegan_default() -> str:
    from pixelsmith.zoo import resolve

    try:
        resolve("zoo:fmnist-stylegan")
        return "zoo:fmnist-stylegan"
    except Exception:
        return "/work/runs/00008-stylegan-30min-fashion-mnist"


def _big(image: torch.Tensor) -> torch.Tensor:
    return image.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)


def interpolation(gan, style, out: Path) -> None:
    rows = []
    for model, kind in ((gan, None), (style, "w")):
        space = latent_space(model, kind)
        paths = interpolate(space, space.from_seeds([1, 3, 5]), space.from_seeds([2, 4, 6]), 10)
        rows += [space.images(p) for p in paths]
    save_image(_big(make_grid(torch.cat(rows), nrow=10)), out / "latent_interpolation.png")
    space = latent_space(style, "w")
    keys = space.from_seeds([1, 2, 3, 4, 1])
    legs = [interpolate(space, keys[i], keys[i + 1], 13)[0][:-1] for i in range(4)]
    frames = space.images(torch.cat(legs))
    write_animation(frames, out / "latent_interpolation.webp", fps=12, scale=4)


def directions(style, out: Path) -> None:
    space = latent_space(style, "w")
    lab = shipped_labeller(space)
    codes = space.random(2000, seed=1)
    called = label_images(lab.classify, space.images(codes)).argmax(1)
    cells: dict[tuple[int, str], list[torch.Tensor]] = {}
    for src, dst in PAIRS:
        a, b = lab.class_id(src), lab.class_id(dst)
        pick = codes[torch.nonzero(called == a).flatten()[:2]]
        for m in ("mean", "linear"):
            d = label_direction(space, a, b, m, 2000, labeller=lab)
            for i in range(len(pick)):
                moved = torch.cat([apply(pick[i : i + 1], d, s) for s in (0, 1, 2, 3)])
                cells.setdefault((i, m), []).append(space.images(moved))
    order = sorted(cells, key=lambda k: (k[0], k[1] != "mean"))
    grid = torch.cat([torch.cat(cells[k]) for k in order])  # a row: each pair's 4 strengths
    save_image(_big(make_grid(grid, nrow=4 * len(PAIRS))), out / "latent_directions.png")


def mixing(style, out: Path) -> None:
    from pixelsmith.data.sources import load_images
    from pixelsmith.edit.latent.invert import invert

    space = latent_space(style, "w+")
    test = load_images("fashion-mnist", split="test")
    real = test.as_float()[[0, 1, 2]]  # an ankle boot, a pullover, a trouser
    codes = invert(space, real, steps=200).codes
    rows = torch.cat([space.from_seeds([11, 12]), codes[:2]])
    cols = torch.cat([space.from_seeds([13, 14, 15]), codes[2:]])
    grid = mix_grid(space, rows, cols)
    save_image(_big(make_grid(grid, nrow=len(cols) + 1)), out / "latent_mixing.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stylegan", default=None, help="the Fashion-MNIST StyleGAN (run or zoo:)")
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--only", help="comma list of interpolation, directions, mixing")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gan = load_model("zoo:fmnist-gan")
    style = load_model(args.stylegan or _stylegan_default())
    only = set(args.only.split(",")) if args.only else {"interpolation", "directions", "mixing"}
    if "interpolation" in only:
        interpolation(gan, style, out)
    if "directions" in only:
        directions(style, out)
    if "mixing" in only:
        mixing(style, out)
    for name in sorted(out.glob("latent_*")):
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
