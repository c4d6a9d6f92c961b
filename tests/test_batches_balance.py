"""Batches: the default order is unchanged; balanced batches are balanced, resumable, sharded."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.train.batches import Batches

# 10 images of class 0, 4 of class 1, 6 of class 2, shuffled; the pixel value is the image id.
_SHUFFLE = torch.randperm(20, generator=torch.Generator().manual_seed(1))
LABELS = torch.tensor([0] * 10 + [1] * 4 + [2] * 6)[_SHUFFLE]
IMAGES = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1)


def ids(batch: tuple[torch.Tensor, torch.Tensor | None]) -> list[int]:
    return batch[0].flatten().mul(255).round().long().tolist()


def test_default_order_is_what_it_always_was():
    # Independent reimplementation of the unbalanced order: one permutation per epoch.
    b = Batches(IMAGES, LABELS, 6, seed=4)
    for epoch in range(3):
        perm = torch.randperm(20, generator=torch.Generator().manual_seed(4 * 1_000_003 + epoch))
        for k in range(3):  # 20 // 6 batches, the last 2 images dropped
            assert ids(b.next()) == perm[6 * k : 6 * k + 6].tolist()
    assert b.epoch_size == 20


def test_balanced_batches_hold_every_class_equally():
    b = Batches(IMAGES, LABELS, 6, seed=0, balance=True)
    assert b.epoch_size == 30  # 3 classes x 10, the largest class
    seen: Counter[int] = Counter()
    for _ in range(5):  # one epoch
        x, y = b.next()
        assert Counter(y.tolist()) == {0: 2, 1: 2, 2: 2}
        assert [LABELS[i].item() for i in ids((x, y))] == y.tolist()
        seen.update(ids((x, y)))
    assert b.epoch == 0
    by_class = {c: [seen[i] for i in range(20) if LABELS[i] == c] for c in range(3)}
    assert by_class[0] == [1] * 10  # the largest class: every image once
    assert sorted(by_class[1]) == [2, 2, 3, 3] and sorted(by_class[2]) == [1, 1, 2, 2, 2, 2]
    b.next()
    assert b.epoch == 1
    other = Batches(IMAGES, LABELS, 6, seed=1, balance=True)
    assert ids(other.next()) != ids(Batches(IMAGES, LABELS, 6, seed=0, balance=True).next())


def test_balanced_batches_resume_exactly():
    b = Batches(IMAGES, LABELS, 6, seed=2, balance=True)
    for _ in range(7):  # into the second epoch
        b.next()
    state = b.state()
    ahead = [ids(b.next()) for _ in range(6)]
    again = Batches(IMAGES, LABELS, 6, seed=2, balance=True)
    again.load_state(state)
    assert [ids(again.next()) for _ in range(6)] == ahead


def test_balanced_batches_shard_into_balanced_slices():
    single = Batches(IMAGES, LABELS, 12, seed=3, balance=True)
    ranks = [Batches(IMAGES, LABELS, 12, seed=3, rank=r, world=2, balance=True) for r in range(2)]
    for _ in range(6):  # crosses epochs (2 batches of 12 in 30)
        whole = ids(single.next())
        parts = [r.next() for r in ranks]
        assert sum((ids(p) for p in parts), []) == whole
        for p in parts:
            assert Counter(p[1].tolist()) == {0: 2, 1: 2, 2: 2}


def test_balance_errors_say_what_to_change():
    with pytest.raises(UserError, match="multiple of 6"):
        Batches(IMAGES, LABELS, 8, seed=0, world=2, balance=True)  # 3 classes x 2 processes
    with pytest.raises(UserError, match="multiple of 3"):
        Batches(IMAGES, LABELS, 7, seed=0, balance=True)
    with pytest.raises(UserError, match="labelled data"):
        Batches(IMAGES, None, 6, seed=0, balance=True)
    with pytest.raises(UserError, match="class 1 has only 4; lower train.batch"):
        Batches(IMAGES, LABELS, 15, seed=0, balance=True)
