from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ck

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SETTINGS = [
    "model.optimizer=sgd",
    "model.lr_g=0.05",
    "model.lr_d=0.05",
    "model.g_norm=none",
    "model.diffaugment=color,translation,cutout",
    "data.augment.flip_p=0.5",
    "train.steps=4",
    "train.batch=16",
]


def test_two_processes_match_one_on_the_same_global_batch(tmp_path, tiny, torchrun):
    overrides = tiny + SETTINGS
    single = train(build_config("dcgan", overrides=overrides), tmp_path / "one", progress=False)
    sets = [a for o in overrides for a in ("--set", o)]
    torchrun("-m", "pixelsmith", "train", "dcgan", "--quiet", "--out", str(tmp_path / "two"), *sets)
    runs = list((tmp_path / "two").iterdir())
    assert len(runs) == 1  # only rank 0 writes
    a, man_a = ck.load_checkpoint(ck.resolve_checkpoint(single))
    b, man_b = ck.load_checkpoint(ck.resolve_checkpoint(runs[0]))
    assert man_b["world_size"] == 2 and man_b["step"] == man_a["step"] == 4
    nets = [k for k in a if k.startswith("net/")]
    assert len(nets) > 10
    moved = 0.0
    for k in nets:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5, msg=k)
    init = train(
        build_config("dcgan", overrides=overrides + ["train.steps=1"]),
        tmp_path / "z",
        progress=False,
    )
    c, _ = ck.load_checkpoint(ck.resolve_checkpoint(init))
    moved = max((a[k] - c[k]).abs().max().item() for k in nets if a[k].is_floating_point())
    assert moved > 1e-3  # training really changed the weights between steps 1 and 4


WORKER = """
import os, sys, torch
from pixelsmith.train.distributed import init_distributed
d = init_distributed(torch.device("cpu"))
torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)  # imports torch._dynamo
d.barrier()
d.close()
tasks = f"/proc/{os.getpid()}/task"
def name(t):
    try:
        return open(f"{tasks}/{t}/comm").read().strip()
    except FileNotFoundError:  # the thread ended between the listing and the read: not left
        return ""
names = [name(t) for t in os.listdir(tasks)]
sys.exit(f"threads left after close: {names}" if any("gloo" in n for n in names) else 0)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_close_ends_the_process_group_threads(tmp_path, torchrun):
    # Left running, gloo's threads race interpreter teardown and now and then abort the worker.
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    torchrun(str(script))
