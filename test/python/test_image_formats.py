"""WebP, GIF, BMP, TIFF and HEIF/AVIF against the reference, as test_image_parity.py does for JPEG and
PNG: the pixels after resize + crop + RGB must be byte-identical to Debian's PIL 9.4 + torchvision
(HEIF, which PIL 9.4 cannot read: to Debian's heif-convert output read back through PIL). Real files
are Pillow's test images kept in data/images-pillow (ORIGIN.md); the rest is generated here with PIL and
heif-enc. Every file is counted identical, refused by both, or differing; the differing ones must be
exactly the explained list below (docs/images.md)."""
import glob
import os
import shutil
import subprocess

import numpy as np
import pytest

import test_image_parity as base

from PIL import Image  # noqa: E402  (base has skipped the module if PIL is missing)

ROOT = base.ROOT
PROJECT_DATA = os.path.join(ROOT, os.environ.get("JACLIP_PROJECT_DATA", "data"))
PILLOW_IMAGES = os.path.join(PROJECT_DATA, "images-pillow")
HEIF_SUFFIXES = (".heic", ".heif", ".avif")

# Files where libjaclip and the reference disagree, each for a reason docs/images.md gives.
EXPLAINED = {
    # LZW minimum code size 11 (the GIF specification allows at most 8): PIL decodes it, giflib refuses.
    "issue_2811.gif": "giflib refuses LZW code size > 8",
    # CIELab TIFFs: PIL converts LAB to RGB with its own formula; libjaclip does not read LAB.
    "lab.tif": "LAB not read", "lab-red.tif": "LAB not read", "lab-green.tif": "LAB not read",
    # Fuzzer-made Group 4 files: PIL parses the directory itself and its strip reader fails; libtiff's
    # fax codec forces 1 bit per sample and reads them.
    "crash-0da013a13571cc8eb457a39fee8db18f8a3c7127.tif": "libtiff reads a damaged G4 file",
    "crash-74d2a78403a5a59db1fb0a2b8735ac068a75f6e3.tif": "libtiff reads a damaged G4 file",
    # heif-convert decodes it but its PNG writer (libpng) refuses the ICC profile: no reference output.
    "icc_profile.avif": "heif-convert cannot write the reference PNG",
}

COUNTS = {}


def count(fmt, outcome):
    COUNTS.setdefault(fmt, {"identical": 0, "refused by both": 0, "differing (explained)": 0})
    COUNTS[fmt][outcome] += 1


@pytest.fixture(scope="module")
def jc():
    if not os.path.exists(base.LIBRARY):
        pytest.fail(f"{base.LIBRARY} is missing: run `make` first")
    return base.Jaclip(base.LIBRARY)


def fmt_of(path):
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"tiff": "tif", "heic": "heif", "avif": "heif"}.get(ext, ext)


def compare_decoded(jc, handle, pil_image, what, sizes=(224, 37)):
    mode = "RGB" if pil_image.mode == "RGBX" else pil_image.mode
    assert jc.c.jaclip_image_mode(handle).decode() == mode, what
    assert (jc.c.jaclip_image_width(handle), jc.c.jaclip_image_height(handle)) == pil_image.size, what
    for size in sizes:
        base.compare(jc, handle, pil_image, size, what)


def verdict(jc, status, handle, reference, what):
    """'identical' / 'refused by both' / 'differing' for libjaclip's load (status, handle: freed here)
    against reference, a PIL image the reference pipeline takes, or None when it refuses the file."""
    if reference is None:
        if status == base.OK:
            jc.c.jaclip_image_free(handle)
            return "differing"
        return "refused by both"
    if status != base.OK:
        return "differing"
    try:
        compare_decoded(jc, handle, reference, what)
    except AssertionError:
        return "differing"
    finally:
        jc.c.jaclip_image_free(handle)
    return "identical"


def check_against_pil(jc, path=None, data=None, flags=0):
    """'identical' / 'refused by both' / 'differing'; asserts nothing itself about the outcome."""
    pil_image = base.pil_open(path, data)
    status, handle = jc.load(path, data, flags)
    if status != base.OK:
        assert not handle.value and jc.error()
    if pil_image is None or not base.reference_can_preprocess(pil_image):
        pil_image = None
    elif flags & base.EXIF_TRANSPOSE and pil_image.format != "TIFF":
        pil_image = base.ImageOps.exif_transpose(pil_image)
    return verdict(jc, status, handle, pil_image, path or "<bytes>")


def heif_reference(path, folder):
    """heif-convert's PNG of path read by PIL, or None when heif-convert gives none."""
    out = os.path.join(folder, os.path.basename(path) + ".png")
    result = subprocess.run(["heif-convert", path, out], capture_output=True, timeout=60)
    if result.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) == 0:
        return None
    image = Image.open(out)
    image.load()
    return image


def check_against_heif_convert(jc, path, folder):
    status, handle = jc.load(path)
    return verdict(jc, status, handle, heif_reference(path, folder), path)


def pillow_files():
    if not os.path.isdir(PILLOW_IMAGES):
        return []
    found = glob.glob(os.path.join(PILLOW_IMAGES, "**", "*"), recursive=True)
    found += glob.glob(os.path.join(PROJECT_DATA, "images-generated", "*"))
    return sorted(p for p in found if os.path.isfile(p) and not p.endswith((".txt", ".md")) and "LICENSE" not in p)


needs_heif_convert = pytest.mark.skipif(shutil.which("heif-convert") is None,
                                        reason="heif-convert (Debian's libheif-examples) is not installed")


def test_pillow_test_images(jc, tmp_path):
    files = pillow_files()
    assert len(files) > 150, f"{PILLOW_IMAGES} should hold Pillow's test images (data/images-pillow/ORIGIN.md)"
    differing = {}
    for path in files:
        name = os.path.basename(path)
        if path.lower().endswith(HEIF_SUFFIXES):
            if shutil.which("heif-convert") is None:
                continue
            outcome = check_against_heif_convert(jc, path, str(tmp_path))
        else:
            outcome = check_against_pil(jc, path)
            # The same bytes from memory must give the same outcome.
            with open(path, "rb") as f:
                assert check_against_pil(jc, data=f.read()) == outcome, name
        if outcome == "differing":
            differing[name] = EXPLAINED.get(name, "UNEXPLAINED")
            outcome = "differing (explained)"
        count(fmt_of(path), outcome)
    unexplained = sorted(n for n, why in differing.items() if why == "UNEXPLAINED")
    assert not unexplained, f"files that differ from the reference without an explanation: {unexplained}"
    expected = {n for n in EXPLAINED if shutil.which("heif-convert") or not n.endswith(HEIF_SUFFIXES)}
    assert set(differing) == expected, f"explained differences that no longer differ: {expected - set(differing)}"


# ---- generated images ------------------------------------------------------------------------------------

def rgba_image(w, h, seed):
    image = base.make_rgb(w, h, seed)
    alpha = np.asarray(base.make_rgb(w, h, seed + 1))[..., 0].copy()
    alpha[: h // 5] = 0
    alpha[h // 5: 2 * h // 5] = 255
    image.putalpha(Image.fromarray(alpha, "L"))
    return image


def generated_cases():
    rgb, rgba = base.make_rgb(333, 250, 11), rgba_image(333, 250, 12)
    frames = [base.make_rgb(120, 90, s) for s in (13, 14)]
    cases = []
    for w, h in [(1, 1), (224, 224), (227, 300), (2000, 3), (3, 700), (640, 480)]:
        cases.append((f"rgb-{w}x{h}.webp", base.make_rgb(w, h, 15), "WEBP", {"quality": 80}))
    cases += [
        ("rgba.webp", rgba, "WEBP", {"quality": 90}),
        ("lossless.webp", rgb, "WEBP", {"lossless": True}),
        ("lossless-rgba.webp", rgba, "WEBP", {"lossless": True}),
        ("grey.webp", rgb.convert("L"), "WEBP", {}),
        ("animated.webp", frames[0], "WEBP", {"save_all": True, "append_images": [rgba_image(120, 90, 16)]}),
        ("adaptive.gif", rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=200), "GIF", {}),
        ("web.gif", rgb.convert("P"), "GIF", {}),
        ("grey.gif", rgb.convert("L"), "GIF", {}),
        ("bilevel.gif", rgb.convert("1"), "GIF", {}),
        ("interlaced.gif", rgb.convert("P"), "GIF", {"interlace": True}),
        ("transparent.gif", rgb.convert("P"), "GIF", {"transparency": 7}),
        ("animated.gif", frames[0].convert("P"), "GIF", {"save_all": True, "append_images": [frames[1]]}),
        ("small-4bit.gif", base.make_rgb(300, 301, 17).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "GIF", {}),
        ("rgb.bmp", rgb, "BMP", {}),
        ("rgb-odd.bmp", base.make_rgb(227, 300, 18), "BMP", {}),
        ("palette.bmp", rgb.convert("P"), "BMP", {}),
        ("grey.bmp", rgb.convert("L"), "BMP", {}),
        ("bilevel.bmp", rgb.convert("1"), "BMP", {}),
        ("rgb.tif", rgb, "TIFF", {}),
        ("rgb-lzw.tif", rgb, "TIFF", {"compression": "tiff_lzw"}),
        ("rgb-deflate.tif", rgb, "TIFF", {"compression": "tiff_adobe_deflate"}),
        ("rgb-jpeg.tif", rgb, "TIFF", {"compression": "jpeg"}),
        ("rgb-packbits.tif", rgb, "TIFF", {"compression": "packbits"}),
        ("rgba.tif", rgba, "TIFF", {}),
        ("palette.tif", rgb.convert("P"), "TIFF", {}),
        ("grey.tif", rgb.convert("L"), "TIFF", {"compression": "tiff_lzw"}),
        ("bilevel-g4.tif", rgb.convert("1"), "TIFF", {"compression": "group4"}),
        ("bilevel.tif", rgb.convert("1"), "TIFF", {}),
        ("cmyk.tif", rgb.convert("CMYK"), "TIFF", {}),
        ("la.tif", rgba.convert("LA"), "TIFF", {}),
        ("grey16.tif", Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "I;16"), "TIFF", {}),
        ("int32.tif", Image.fromarray(np.asarray(rgb.convert("L")).astype(np.int32) - 20, "I"), "TIFF", {}),
    ]
    return cases


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    paths = {}
    for name, image, fmt, options in generated_cases():
        paths[name] = str(folder / name)
        image.save(paths[name], fmt, **options)
    return paths


@pytest.mark.parametrize("name", [c[0] for c in generated_cases()])
def test_generated(jc, generated, name):
    outcome = check_against_pil(jc, generated[name])
    count(fmt_of(name), "differing (explained)" if outcome == "differing" else outcome)
    if name == "grey16.tif":  # PIL opens it as I;16, which the reference cannot resize
        assert outcome == "refused by both"
        assert "I;16" in jc.error()
    else:
        assert outcome == "identical", name
        assert base.pil_open(generated[name]).format in ("WEBP", "GIF", "BMP", "TIFF")


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation(jc, tmp_path, fmt, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / f"o{orientation}.{fmt.lower()}")
    base.make_rgb(300, 240, 9).save(path, fmt, exif=exif.tobytes())
    for flags in (0, base.EXIF_TRANSPOSE):
        assert check_against_pil(jc, path, flags=flags) == "identical", (orientation, flags)
    status, handle = jc.load(path, flags=base.EXIF_TRANSPOSE)
    assert status == base.OK
    turned = jc.c.jaclip_image_width(handle) == 240
    jc.c.jaclip_image_free(handle)
    # A case where the image is really turned, so the test could fail.
    assert turned == (orientation >= 5), orientation


@needs_heif_convert
def test_heif_generated(jc, tmp_path):
    if shutil.which("heif-enc") is None:
        pytest.skip("heif-enc (libheif-examples) is not installed")
    src, src_alpha = str(tmp_path / "src.png"), str(tmp_path / "srca.png")
    base.make_rgb(333, 250, 21).save(src)
    rgba_image(250, 333, 22).save(src_alpha)
    outputs = []
    for name, args in [("lossy.heic", ["-q", "70", src]), ("alpha.heic", ["-q", "80", src_alpha]),
                       ("lossless.heic", ["-L", src]), ("lossy.avif", ["-q", "60", src])]:
        out = str(tmp_path / name)
        subprocess.run(["heif-enc", "-o", out] + args, check=True, capture_output=True, timeout=120)
        outputs.append(out)
    for out in outputs:
        outcome = check_against_heif_convert(jc, out, str(tmp_path))
        count("heif", outcome)
        assert outcome == "identical", out


def truncations(data):
    n = len(data)
    return [data[:p] for p in sorted({1, 5, 12, 20, 40, 100, n // 3, n // 2, n - 40, n - 3, n - 1}) if 0 < p < n]


@pytest.mark.parametrize("name", ["rgb-640x480.webp", "lossless.webp", "adaptive.gif", "interlaced.gif", "rgb.bmp",
                                  "palette.bmp", "rgb-lzw.tif", "rgb.tif", "rgb-jpeg.tif"])
def test_truncated_and_damaged(jc, generated, name):
    """Cut or flipped files: never a crash; a refusal with a message, or pixels PIL also gives."""
    with open(generated[name], "rb") as f:
        data = f.read()
    rng = np.random.default_rng(len(data))
    pieces = truncations(data)
    for _ in range(8):
        damaged = bytearray(data)
        damaged[int(rng.integers(len(data) // 4, len(data)))] ^= 0x5A
        pieces.append(bytes(damaged))
    accepted_alone = []
    for piece in pieces:
        outcome = check_against_pil(jc, data=piece)
        status, handle = jc.load(data=piece)
        if status == base.OK:
            jc.c.jaclip_image_free(handle)
            if base.pil_open(data=piece) is None:
                accepted_alone.append(len(piece))
        else:
            assert jc.error()
        assert outcome in ("identical", "refused by both", "differing")
    # Cut files: what libjaclip accepts, PIL accepts too (damaged pixels may differ, refusals may not).
    cut_accepted = [n for n in accepted_alone if n < len(data)]
    assert not cut_accepted, f"{name}: truncated to {cut_accepted} bytes PIL refuses, libjaclip accepts"


def test_detected_by_content_not_name(jc, generated, tmp_path):
    for name in ("rgb.tif", "adaptive.gif", "lossless.webp", "rgb.bmp"):
        moved = str(tmp_path / (name + ".jpg"))
        shutil.copy(generated[name], moved)
        assert check_against_pil(jc, moved) == "identical", name


def test_pixel_limit_from_header(jc, generated):
    for name in ("rgb-640x480.webp", "rgb.tif", "rgb.bmp", "adaptive.gif"):
        status, handle = jc.load(generated[name], max_pixels=1000)
        assert status == base.IMAGE_TOO_LARGE and jc.error(), name
        status, handle = jc.load(generated[name])
        assert status == base.OK, name
        jc.c.jaclip_image_free(handle)


def test_summary():
    """Prints the counts gathered above (run last in file order)."""
    lines = [f"  {fmt}: " + ", ".join(f"{n} {k}" for k, n in c.items()) for fmt, c in sorted(COUNTS.items())]
    print("\nimage formats against the reference:\n" + "\n".join(lines))
    assert COUNTS, "no format was checked"





# ---- bounds (docs/images.md, "Pixel limit"): checked in a child under a 1 GB address-space limit ----------

BOUNDED_LOAD = r"""
import ctypes, sys
c = ctypes.CDLL(sys.argv[1])
c.jaclip_image_load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint32]
c.jaclip_last_error.restype = ctypes.c_char_p
c.jaclip_image_width.argtypes = [ctypes.c_void_p]
image = ctypes.c_void_p()
status = c.jaclip_image_load(ctypes.byref(image), sys.argv[2].encode(), 0, 0)
print(status, c.jaclip_image_width(image) if status == 0 else c.jaclip_last_error().decode())
"""


def bounded_load(path):
    import resource
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = subprocess.run([sys.executable, "-c", BOUNDED_LOAD, base.LIBRARY, str(path)], capture_output=True,
                            text=True, timeout=60, preexec_fn=limit)
    assert result.returncode == 0, result.stderr
    status, rest = result.stdout.strip().split(" ", 1)
    return int(status), rest


def test_headers_claiming_huge_images_are_refused_before_decoding(tmp_path):
    import struct
    cases = {
        # GIF logical screen 65535 x 65535, one tiny frame
        "screen.gif": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" +
                      b"," + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02\x02\x44\x01\x00;",
        # BMP info header claiming 100000 x 100000 at 24 bits, no pixels
        "huge.bmp": b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 100000, 100000, 1,
                                                                              24, 0, 0, 0, 0, 0, 0),
        # TIFF directory claiming 100000 x 100000 RGB
        "huge.tif": b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 3) +
                    struct.pack("<HHII", 256, 4, 1, 100000) + struct.pack("<HHII", 257, 4, 1, 100000) +
                    struct.pack("<HHII", 277, 3, 1, 3) + b"\0\0\0\0",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        status, message = bounded_load(tmp_path / name)
        assert status == base.IMAGE_TOO_LARGE, (name, status, message)


def test_small_image_before_a_hole_is_read_header_first(tmp_path):
    """A 64x64 file followed by 4 GB of nothing costs its own bytes (1 GB address space in the child)."""
    for name, fmt, options in [("x.webp", "WEBP", {}), ("x.gif", "GIF", {}), ("x.bmp", "BMP", {}),
                               ("x.tif", "TIFF", {})]:
        path = tmp_path / name
        base.make_rgb(64, 64, 3).save(path, fmt, **options)
        with open(path, "r+b") as f:
            f.truncate(4 << 30)
        status, width = bounded_load(path)
        assert (status, width) == (base.OK, "64"), (name, status, width)


def test_tiff_directory_past_a_hole(tmp_path):
    """The first TIFF directory after 3 GB: read where it lies, refused (it lies past what its 64 x 64
    image can need), with no 3 GB read."""
    import struct
    path = tmp_path / "far.tif"
    directory = 3 << 30
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", directory) + bytes(64 * 64))
        f.seek(directory)
        f.write(struct.pack("<H", 3) + struct.pack("<HHII", 256, 3, 1, 64) + struct.pack("<HHII", 257, 3, 1, 64) +
                struct.pack("<HHII", 273, 4, 1, 8) + b"\0\0\0\0")
    status, message = bounded_load(path)
    assert status == base.IMAGE_DECODE and "past what" in message, (status, message)


def test_animation_costs_its_first_frame(jc, tmp_path):
    """300 frames: only the first is decoded (GIF: nothing after it is even read)."""
    frames = [base.make_rgb(64, 48, i % 7) for i in range(300)]
    for name in ("many.gif", "many.webp"):
        path = str(tmp_path / name)
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=10)
        assert check_against_pil(jc, path) == "identical", name


def test_fuzzer_regressions_agree_from_file_and_memory(jc):
    """Inputs the image fuzzers failed on (test/fuzz/image-regressions): the header-first file reader
    and the memory decoder agree, and PIL agrees or refuses."""
    folder = os.path.join(ROOT, "test", "fuzz", "image-regressions")
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        with open(path, "rb") as f:
            data = f.read()
        from_file, handle = jc.load(path)
        if from_file == base.OK:
            jc.c.jaclip_image_free(handle)
        from_memory, handle = jc.load(data=data)
        if from_memory == base.OK:
            jc.c.jaclip_image_free(handle)
        assert (from_file == base.OK) == (from_memory == base.OK), (path, from_file, from_memory, jc.error())
        assert check_against_pil(jc, path) in ("identical", "refused by both"), path
