"""No metadata leaks: a photo with GPS in its EXIF and XMP goes through the edits, the watermark
and the service, and no EXIF, GPS or XMP of it comes out; its ICC colour profile is kept where
it describes the pixels, and left out with a warning where it cannot be."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import ExifTags, Image, ImageCms

from pixelsmith.cli.main import main
from pixelsmith.edit.photo import encode_photo, photo_of
from pixelsmith.errors import PixelsmithWarning

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="35,41.37N"/></rdf:RDF>'
    b"</x:xmpmeta>"
)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _located(path, mode: str = "RGB", icc: bytes | None = SRGB, orientation: int = 1) -> None:
    """A photo with the camera's make, a GPS position in EXIF and in XMP, and a profile."""
    g = torch.Generator().manual_seed(0)
    arr = (torch.rand(160, 200, 3, generator=g) * 255).byte().numpy()
    im = Image.fromarray(arr).convert(mode)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    if orientation != 1:
        exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (35.0, 41.0, 22.0),
    }
    extra = {"icc_profile": icc} if icc else {}
    im.save(path, "JPEG", exif=exif, xmp=XMP, **extra)
    with Image.open(path) as check:  # the fixture really carries what it claims
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo) and "xmp" in check.info


def _clean(data_or_path, icc: bytes | None = SRGB) -> None:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        im.load()
        assert not im.getexif(), dict(im.getexif())
        assert not any("xmp" in k.lower() or "xml" in k.lower() for k in im.info), list(im.info)
        assert im.info.get("icc_profile") == icc


@pytest.mark.zoo
@pytest.mark.parametrize(
    "argv",
    [
        ["edit", "denoise"],
        ["edit", "sr", "--scale", "2"],
        ["edit", "enhance"],
    ],
    ids=["denoise", "sr", "enhance"],
)
def test_edits_leave_location_behind_and_keep_the_profile(tmp_path, argv):
    _located(tmp_path / "in.jpg")
    for suffix in (".png", ".jpg", ".webp"):
        out = tmp_path / f"out{suffix}"
        assert main([*argv, str(tmp_path / "in.jpg"), "-o", str(out)]) == 0
        _clean(out)


@pytest.mark.zoo
def test_every_other_operation_on_a_photo_leaves_location_behind(tmp_path):
    _located(tmp_path / "in.jpg")
    mask = Image.new("L", (200, 160))
    mask.paste(255, (50, 50, 120, 100))
    mask.save(tmp_path / "mask.png")
    photo, hole = str(tmp_path / "in.jpg"), str(tmp_path / "mask.png")
    operations = {
        "inpaint": ["edit", "inpaint", photo, "--mask", hole],
        "anonymise": ["edit", "anonymise", photo],
        "restore-faces": ["edit", "restore-faces", photo],
        "protect": ["protect", photo, "--steps", "2"],
        "attack": ["attack", "zoo:denoise", photo, "--steps", "2"],
    }
    for name, argv in operations.items():
        out = tmp_path / f"{name}.png"
        assert main([*argv, "-o", str(out)]) == 0, name
        _clean(out)
    # the forensic map is a picture of scores over the photo: none of its metadata either
    assert main(["detect", photo, "-o", str(tmp_path / "map.png")]) == 0
    _clean(tmp_path / "map.png", icc=None)


def test_the_watermark_leaves_location_behind(tmp_path):
    _located(tmp_path / "in.jpg")
    assert main(["keys", "new", "watermark", "-o", str(tmp_path / "k.json")]) == 0
    args = ["mark", "embed", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "m.png")]
    assert main([*args, "--key", str(tmp_path / "k.json")]) == 0
    _clean(tmp_path / "m.png")


def test_a_profile_that_does_not_fit_is_dropped_with_a_warning(tmp_path):
    _located(tmp_path / "grey.jpg", mode="L", icc=None)
    with Image.open(tmp_path / "grey.jpg") as im:
        im.load()
        im.info["icc_profile"] = SRGB  # an RGB profile on grey pixels
        with pytest.warns(PixelsmithWarning, match="colour profile"):
            photo = photo_of(im)
    assert photo.icc is None
    _clean(encode_photo(photo, tmp_path / "x.png"), icc=None)
    _located(tmp_path / "in.jpg")
    with Image.open(tmp_path / "in.jpg") as im:
        photo = photo_of(im)
    assert photo.icc == SRGB
    with pytest.warns(PixelsmithWarning, match="BMP cannot carry"):
        encode_photo(photo, tmp_path / "x.bmp")


@pytest.mark.zoo
def test_the_service_leaves_location_behind(tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    import base64

    from conftest import make_gan
    from fastapi.testclient import TestClient

    from pixelsmith.jobs.stamp import Stamp
    from pixelsmith.serve.app import Served, create_app

    gan = make_gan()
    gan.add_ema_copies()
    c = TestClient(create_app({"tiny": Served("tiny", gan.eval(), "test")}, stamp=Stamp()))
    _located(tmp_path / "in.jpg")
    data = (tmp_path / "in.jpg").read_bytes()
    r = c.post(
        "/v1/images/edits",
        files={"image": ("in.jpg", data)},
        data={"operation": "denoise", "output_format": "png"},
    )
    assert r.status_code == 200, r.text
    _clean(base64.b64decode(r.json()["data"][0]["b64_json"]))


def test_keep_metadata_carries_exif_and_xmp_with_the_orientation_applied_once(tmp_path):
    _located(tmp_path / "in.jpg", orientation=6)  # stored on its side: 200 wide, 160 high
    for suffix in (".jpg", ".png", ".webp"):
        out = tmp_path / f"kept{suffix}"
        argv = ["edit", "enhance", "--methods", "autocontrast", str(tmp_path / "in.jpg")]
        assert main([*argv, "-o", str(out), "--keep-metadata"]) == 0
        with Image.open(out) as im:
            im.load()
            exif = im.getexif()
            assert exif.get(ExifTags.Base.Make) == "TestCam"
            assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
            # upright pixels, and no orientation tag to turn them a second time
            assert im.size == (160, 200) and ExifTags.Base.Orientation not in exif
            xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
            assert xmp and b"GPSLatitude" in (xmp if isinstance(xmp, bytes) else xmp.encode())
        plain = tmp_path / f"plain{suffix}"
        assert main([*argv, "-o", str(plain)]) == 0
        _clean(plain)
