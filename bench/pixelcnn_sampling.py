"""PixelCNN sampling speed: the incremental sampler against the naive loop, side by side.

The naive loop (`_sample_naive`, the reference the tests compare against) runs the whole network
on the whole image for every sub-pixel; the incremental one computes only what each new
sub-pixel changes. Both draw the same images from the same uniforms (checked here too). Rounds
alternate the two samplers; the table gives the median ms per image and the ratio.

    .venv/bin/python bench/pixelcnn_sampling.py                 # default config, 28x28 grey
    .venv/bin/python bench/pixelcnn_sampling.py --preset pixelcnn-30min --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pixelsmith.models.pixelcnn import _sample_fast, _sample_naive
from pixelsmith.train.config import build_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="pixelcnn")
    ap.add_argument("--batch", type=int, default=8, help="images per sampler call")
    ap.add_argument("--fast-batch", type=int, default=64, help="also time the fast one at this")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pixelsmith.models import family_class

    cfg = build_config(args.preset, overrides=["data.source=fashion-mnist"])
    fam = family_class("pixelcnn")(cfg.model, (1, 28, 28))
    net = fam.networks["net"].eval()
    out = cfg.model.output

    def per_image(draw, n: int) -> tuple[float, torch.Tensor]:
        u = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            t = time.perf_counter()
            levels = draw(net, out, u, None)
        return (time.perf_counter() - t) / n * 1000, levels

    times: dict[str, list[float]] = {"naive": [], "fast": [], f"fast@{args.fast_batch}": []}
    for _ in range(args.rounds):
        t_naive, a = per_image(_sample_naive, args.batch)
        t_fast, b = per_image(_sample_fast, args.batch)
        assert torch.equal(a, b), "the two samplers disagree"
        times["naive"].append(t_naive)
        times["fast"].append(t_fast)
        times[f"fast@{args.fast_batch}"].append(per_image(_sample_fast, args.fast_batch)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.preset}, 28x28 grey, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"naive loop, batch {args.batch}:        {med['naive']:9.1f} ms/image")
    print(f"incremental, batch {args.batch}:       {med['fast']:9.1f} ms/image")
    print(
        f"incremental, batch {args.fast_batch}:      {med[f'fast@{args.fast_batch}']:9.1f} ms/image"
    )
    print(
        f"speed-up at batch {args.batch}: {med['naive'] / med['fast']:.0f}x; "
        f"naive {args.batch} vs incremental {args.fast_batch}: "
        f"{med['naive'] / med[f'fast@{args.fast_batch}']:.0f}x"
    )


if __name__ == "__main__":
    main()
