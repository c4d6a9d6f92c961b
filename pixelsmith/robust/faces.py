"""PGD that hides a photo's faces from the MTCNN detector (`pixelsmith.faces`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.robust.image_pgd import (
    Tick,
    batched,
    check_eps,
    check_size,
    check_steps,
    image_psnr,
    linf_pgd,
    random_signs,
    value_and_grad,
)

# What the hinge pushes each stage's face probability below: its threshold minus this margin.
FACE_MARGIN = 0.1
FACE_REFRESH = 10  # every this many steps, the faces MTCNN finds now join the boxes attacked


@dataclass
class FaceAttack:
    """An attack on the face detector: the image, and the faces found before and after."""

    image: Tensor  # (C, H, W)
    faces_before: list[Any]  # pixelsmith.faces.types.Face
    faces_after: list[Any]
    faces_random: list[Any]  # after random signs of the full budget: the anchor
    psnr: float

    def row(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"faces_before": len(self.faces_before), "faces_after": len(self.faces_after),
                "faces_after_random_change": len(self.faces_random),
                "hidden": len(self.faces_before) - len(self.faces_after),
                "psnr": round(self.psnr, 2)}  # fmt: skip


def _box_crops(img: Tensor, boxes: list[tuple[float, ...]], size: int) -> Tensor:
    """Area-resized crops (N, 3, size, size) of whole-pixel boxes, black outside the image,
    differentiable in img (MTCNN's own crops, for boxes held fixed)."""
    _, h, w = img.shape
    out = []
    for box in boxes:
        x0, y0, x1, y1 = (math.floor(v) for v in box[:4])
        if x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            continue
        pad = (max(-x0, 0), max(x1 - w, 0), max(-y0, 0), max(y1 - h, 0))
        patch = img[:, max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
        patch = torch.nn.functional.pad(patch, pad)
        out.append(torch.nn.functional.interpolate(patch[None], size=(size, size), mode="area"))
    return torch.cat(out) if out else img.new_zeros(0, 3, size, size)


def attack_face_detector(
    x: Tensor,
    eps: float = 8 / 255,
    steps: int = 50,
    *,
    min_size: float = 20,
    seed: int = 0,
    tick: Tick | None = None,
) -> FaceAttack:
    """PGD (Linf) that hides a photo's faces from MTCNN: it pushes P-Net's face probability
    below its threshold (less `FACE_MARGIN`) in every window of the pyramid, and R-Net's and
    O-Net's on the faces found (on the clean photo, and every `FACE_REFRESH` steps on the
    attacked one: the cascade's boxes held fixed), and reports the faces found before and after.
    """
    from pixelsmith.faces import mtcnn as M
    from pixelsmith.faces.detect import detect_faces, load_mtcnn

    eps, steps = check_eps(eps), check_steps(steps)
    xb, single = batched(x)
    if xb.shape[0] != 1:
        raise UserError("the face detector is attacked one photo at a time")
    check_size(*xb.shape[-2:])
    net = load_mtcnn(xb.device)
    t = M.THRESHOLDS
    before = detect_faces(xb[0], "mtcnn", min_size)
    boxes = [f.box for f in before]
    h, w = xb.shape[-2:]
    pyramid = [(int(h * s + 1), int(w * s + 1)) for s in M.scales(h, w, min_size)]

    def hinge(p: Tensor, threshold: float) -> Tensor:
        return torch.relu(p - (threshold - FACE_MARGIN)).sum()

    def loss(v: Tensor) -> Tensor:
        img = (v[0].expand(3, -1, -1) if v.shape[1] == 1 else v[0]) * 255
        total = img.new_zeros(())
        for size in pyramid:
            small = torch.nn.functional.interpolate(img[None], size=size, mode="area")
            total = total + hinge(net.pnet((small - 127.5) / 128)[0], t[0])
        if boxes:
            total = total + hinge(net.rnet((_box_crops(img, boxes, 24) - 127.5) / 128)[0], t[1])
            total = total + hinge(net.onet((_box_crops(img, boxes, 48) - 127.5) / 128)[0], t[2])
        return -total[None]

    def objective(v: Tensor, step: int, grad: bool) -> tuple[Tensor, Tensor | None]:
        if step and step % FACE_REFRESH == 0:
            boxes.extend(f.box for f in detect_faces(v[0], "mtcnn", min_size))
        return value_and_grad(loss, v, grad)

    attack = eps > 0 and bool(before)
    adv = linf_pgd(objective, xb, eps, steps, None, seed, tick) if attack else xb.clone()
    after = detect_faces(adv[0], "mtcnn", min_size)
    rand = detect_faces(random_signs(xb, eps, seed)[0], "mtcnn", min_size) if before else []
    return FaceAttack(adv[0] if single else adv, before, after, rand, float(image_psnr(adv, xb)[0]))
