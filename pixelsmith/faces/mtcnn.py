"""MTCNN (Zhang et al. 2016) in plain torch, with the P/R/O-nets of the facenet-pytorch wheel.

The weight files (`facenet_pytorch/data/{pnet,rnet,onet}.pt`, MIT licence, converted by
facenet-pytorch from davidsandberg/facenet's TF port of the authors' Caffe models) are found
through the installed package's location and hash-checked; the package itself is never imported
(its metadata pins an old torch and its code needs torchvision). Install them with
`pip install --no-deps facenet-pytorch==2.6.0`.

Conventions the weights fix (learnt from facenet-pytorch's detect_face, re-derived here):
- input RGB on the 0-255 scale, normalised as (x - 127.5) / 128;
- R-Net and O-Net flatten their last feature map in (width, height, channel) order, not torch's
  (channel, height, width): the Caffe models were trained on transposed images;
- O-Net's 10 landmark outputs are the 5 x's, then the 5 y's, each relative to its input box, in
  the order image-left eye, image-right eye, nose, image-left and image-right mouth corner;
- the image pyramid and every crop are resized by area averaging (OpenCV's INTER_AREA).

Coordinates here are continuous: a box (x0, y0, x1, y1) covers [x0, x1) x [y0, y1) and pixel
(i, j) is the square [j, j+1) x [i, i+1). Crops that leave the image are padded with black, as
the original MTCNN does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.faces.nms import nms
from pixelsmith.utils.files import package_folder, sha256_file

SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709
MIN_SIZE = 20
INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
_verified: dict[tuple[str, int, int], bool] = {}


def weights_dir() -> Path | None:
    """The folder of the installed facenet-pytorch weights, found without importing the package."""
    folder = package_folder("facenet_pytorch")
    return None if folder is None else folder / "data"


def weights_present(folder: str | Path | None = None) -> bool:
    """Whether the three weight files exist (their hashes are checked when they are loaded)."""
    found = Path(folder) if folder is not None else weights_dir()
    return found is not None and all((found / f"{n}.pt").is_file() for n in SHA256)


def _path(name: str, folder: str | Path | None) -> Path:
    """A weight file's path; a UserError naming the install when it is missing."""
    found = Path(folder) if folder is not None else weights_dir()
    path = found / f"{name}.pt" if found is not None else None
    if path is None or not path.is_file():
        where = f" at {path}" if path is not None else ""
        raise UserError(
            f"the MTCNN weights are not installed{where}; install them with {INSTALL_HINT}, "
            "or choose --detector haar or lbp"
        )
    return path


def require_weights(folder: str | Path | None = None) -> None:
    """Raise the UserError naming the install unless all three weight files exist."""
    for name in SHA256:
        _path(name, folder)


def load_state(name: str, folder: str | Path | None = None) -> dict[str, Tensor]:
    """The hash-checked state dict of `pnet`, `rnet` or `onet` (loaded with weights_only)."""
    path = _path(name, folder)
    path = path.resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if not _verified.get(key):
        digest = sha256_file(path)
        if digest != SHA256[name]:
            raise UserError(
                f"the MTCNN weights {path} have sha256 {digest}, not {SHA256[name]}; "
                f"reinstall them with {INSTALL_HINT}"
            )
        _verified[key] = True
    return torch.load(path, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread inside (restored after), for the many small operations of a cascade.

    Each multi-threaded operator waits for its slowest thread: on a busy machine a crop's
    resize that takes 0.1 ms alone took 20 ms with two threads.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _flatten_wh(x: Tensor) -> Tensor:
    """Flatten (N, C, H, W) in (W, H, C) order, the order the dense layers were trained on."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal net: fully convolutional, a 12x12 window per output cell at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Face probability (N, h, w) and box offsets (N, 4, h, w)."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x).softmax(1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refine net on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Face probability (N,) and box offsets (N, 4)."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten_wh(self.prelu3(self.conv3(x)))))
        return self.dense5_1(x).softmax(1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Face probability (N,), box offsets (N, 4), landmarks (N, 5, 2) relative to the box."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten_wh(self.prelu4(self.conv4(x)))))
        marks = self.dense6_3(x).view(-1, 2, 5).transpose(1, 2)  # 5 x's then 5 y's
        return self.dense6_1(x).softmax(1)[:, 1], self.dense6_2(x), marks


def _regress(boxes: Tensor, offsets: Tensor) -> Tensor:
    """Move each box edge by its offset times the box's width or height."""
    wh = (boxes[:, 2:4] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * wh


def _square(boxes: Tensor) -> Tensor:
    """The square with the same centre whose side is the box's longer side."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]).max(1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], 1)


def _crops(image: Tensor, boxes: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Area-resized (size x size) crops of the boxes (black outside the image), and which exist.

    Each box is cut at whole pixels [floor(x0), floor(x1)); a box under one pixel or wholly
    outside the image gives no crop (its flag is False).
    """
    _, h, w = image.shape
    ints = boxes.floor().long().tolist()
    out, ok = [], []
    for x0, y0, x1, y1 in ints:
        good = x1 > x0 and y1 > y0 and x1 > 0 and y1 > 0 and x0 < w and y0 < h
        ok.append(good)
        if not good:
            continue
        patch = image.new_zeros(3, y1 - y0, x1 - x0)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        patch[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
        out.append(F.interpolate(patch[None], size=(size, size), mode="area"))
    flags = torch.tensor(ok, dtype=torch.bool, device=image.device)
    if not out:
        return image.new_zeros(0, 3, size, size), flags
    return torch.cat(out), flags


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * (1 / 128)


def _batched(net: nn.Module, x: Tensor, batch: int = 512) -> tuple[Tensor, ...]:
    outs = [net(x[i : i + batch]) for i in range(0, len(x), batch)]
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


def scales(
    height: int, width: int, min_size: float = MIN_SIZE, factor: float = FACTOR
) -> list[float]:
    """The pyramid's scales: a face of min_size pixels becomes P-Net's 12-pixel window first."""
    s = 12.0 / min_size
    side = min(height, width) * s
    out = []
    while side >= 12:
        out.append(s)
        s *= factor
        side *= factor
    return out


class MTCNN(nn.Module):
    """The three-stage cascade; `detect` finds faces in one image."""

    def __init__(self, folder: str | Path | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        if pretrained:
            for name in SHA256:
                getattr(self, name).load_state_dict(load_state(name, folder))
        self.eval()

    def _propose(self, img: Tensor, min_size: float, threshold: float, factor: float) -> Tensor:
        """Stage 1: P-Net windows over the pyramid, NMS per scale then across scales; (K, 5)."""
        _, h, w = img.shape
        found = []
        for s in scales(h, w, min_size, factor):
            small = F.interpolate(img[None], size=(int(h * s + 1), int(w * s + 1)), mode="area")
            prob, offsets = self.pnet(_normalise(small))
            cells = (prob[0] >= threshold).nonzero()  # (n, 2): row, column
            if not len(cells):
                continue
            score = prob[0, cells[:, 0], cells[:, 1]]
            corner = cells.flip(1).to(img.dtype) * 2  # (x, y) of the window in the scaled image
            windows = torch.cat([corner, corner + 12], 1) / s
            boxes = _regress(windows, offsets[0, :, cells[:, 0], cells[:, 1]].T)
            with _one_thread():
                keep = nms(windows, score, 0.5)
            found.append(torch.cat([windows[keep], boxes[keep], score[keep, None]], 1))
        if not found:
            return img.new_zeros(0, 5)
        every = torch.cat(found)
        with _one_thread():
            keep = nms(every[:, :4], every[:, 8], 0.7)
        every = every[keep]
        return torch.cat([_square(every[:, 4:8]), every[:, 8:9]], 1)

    @torch.inference_mode()
    def detect(
        self,
        image: Tensor,
        min_size: float = MIN_SIZE,
        thresholds: tuple[float, float, float] = THRESHOLDS,
        factor: float = FACTOR,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Boxes (K, 4), scores (K,) and landmarks (K, 5, 2) of an RGB (3, H, W) image in [0, 1].

        Best score first; boxes are not clipped to the image. `min_size` is the smallest face
        side (pixels) searched for; `thresholds` are the P-, R- and O-net score thresholds.
        """
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"MTCNN.detect takes an RGB (3, H, W) image, got {tuple(image.shape)}")
        if not 0 < factor < 1:
            raise UserError(f"the pyramid factor must be between 0 and 1, not {factor}")
        if min_size < 1 or not math.isfinite(min_size):
            raise UserError(f"the minimum face size must be at least 1 pixel, not {min_size}")
        dev = next(self.parameters()).device
        img = image.to(dev, torch.float32).clamp(0, 1) * 255
        empty = (img.new_zeros(0, 4), img.new_zeros(0), img.new_zeros(0, 5, 2))
        cand = self._propose(img, min_size, thresholds[0], factor)
        if not len(cand):
            return empty

        with _one_thread():  # R-Net and O-Net run on small batches of small crops
            return self._refine(img, cand, thresholds)

    def _refine(
        self, img: Tensor, cand: Tensor, thresholds: tuple[float, float, float]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Stages 2 and 3: R-Net then O-Net on the squared proposals (K, 5)."""
        empty = (img.new_zeros(0, 4), img.new_zeros(0), img.new_zeros(0, 5, 2))
        crops, ok = _crops(img, cand[:, :4], 24)
        cand = cand[ok]
        if not len(cand):
            return empty
        score, offsets = _batched(self.rnet, _normalise(crops))
        passed = score > thresholds[1]
        boxes, score, offsets = cand[passed, :4], score[passed], offsets[passed]
        keep = nms(boxes, score, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep]))
        if not len(boxes):
            return empty

        crops, ok = _crops(img, boxes, 48)
        boxes = boxes[ok]
        if not len(boxes):
            return empty
        score, offsets, marks = _batched(self.onet, _normalise(crops))
        passed = score > thresholds[2]
        boxes, score, offsets, marks = boxes[passed], score[passed], offsets[passed], marks[passed]
        size = boxes[:, 2:4] - boxes[:, :2]
        points = boxes[:, None, :2] + marks * size[:, None, :]
        boxes = _regress(boxes, offsets)
        keep = nms(boxes, score, 0.7, mode="min")
        return boxes[keep], score[keep], points[keep]


__all__ = [
    "MTCNN",
    "ONet",
    "PNet",
    "RNet",
    "load_state",
    "require_weights",
    "weights_dir",
    "weights_present",
]
