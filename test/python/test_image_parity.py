"""Image preprocessing parity: libjaclip's decode + resize + crop + RGB + normalise against the
reference pipeline (Debian's PIL 9.4 + torchvision: Resize(size, BILINEAR), CenterCrop(size),
convert("RGB"), ToTensor, Normalize), computed here at test time. The uint8 image after the crop must
be byte-identical, the float tensor equal within 1e-6. Files PIL refuses must be refused too."""
import ctypes
import glob
import io
import os

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageOps  # noqa: E402

T = pytest.importorskip("torchvision.transforms")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBRARY = os.environ.get("JACLIP_LIBRARY", os.path.join(ROOT, "build", "libjaclip.so"))
SHARED_DATA = os.path.join(ROOT, os.environ.get("JACLIP_SHARED_DATA", os.path.join("..", "shared", "data")))
IMAGES = os.path.join(SHARED_DATA, "images")

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
OK, IMAGE_DECODE, IMAGE_TOO_LARGE = 0, 7, 8
EXIF_TRANSPOSE = 1
P = ctypes.c_void_p


# ---- the library through ctypes ------------------------------------------------------------------

class Jaclip:
    def __init__(self, path):
        c = ctypes.CDLL(path)
        sigs = {
            "jaclip_last_error": (ctypes.c_char_p, []),
            "jaclip_image_load": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint32]),
            "jaclip_image_load_memory": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_size_t,
                                                        ctypes.c_uint64, ctypes.c_uint32]),
            "jaclip_image_from_pixels": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_uint32,
                                                        ctypes.c_uint32, ctypes.c_size_t, ctypes.c_int]),
            "jaclip_image_free": (None, [P]),
            "jaclip_image_width": (ctypes.c_uint32, [P]),
            "jaclip_image_height": (ctypes.c_uint32, [P]),
            "jaclip_image_mode": (ctypes.c_char_p, [P]),
            "jaclip_image_resize_crop": (ctypes.c_int, [ctypes.POINTER(P), P, ctypes.c_uint32]),
            "jaclip_image_preprocess": (ctypes.c_int, [ctypes.POINTER(P), ctypes.POINTER(P), ctypes.c_size_t,
                                                       ctypes.c_uint32, ctypes.POINTER(ctypes.c_float),
                                                       ctypes.POINTER(ctypes.c_float)]),
            "jaclip_tensor_free": (None, [P]),
            "jaclip_tensor_data": (P, [P]),
            "jaclip_tensor_nbytes": (ctypes.c_size_t, [P]),
            "jaclip_tensor_ndim": (ctypes.c_size_t, [P]),
            "jaclip_tensor_dim": (ctypes.c_int64, [P, ctypes.c_size_t]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(c, name)
            fn.restype, fn.argtypes = res, args
        self.c = c

    def error(self):
        return self.c.jaclip_last_error().decode()

    def load(self, path=None, data=None, flags=0, max_pixels=0):
        image = P()
        if data is None:
            status = self.c.jaclip_image_load(ctypes.byref(image), path.encode(), max_pixels, flags)
        else:
            status = self.c.jaclip_image_load_memory(ctypes.byref(image), data, len(data), max_pixels, flags)
        if status != OK:
            assert not image.value, "failed load must leave *out NULL"
        return status, image

    def _array(self, tensor, dtype):
        shape = tuple(self.c.jaclip_tensor_dim(tensor, i) for i in range(self.c.jaclip_tensor_ndim(tensor)))
        buf = ctypes.string_at(self.c.jaclip_tensor_data(tensor), self.c.jaclip_tensor_nbytes(tensor))
        self.c.jaclip_tensor_free(tensor)
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()

    def resize_crop(self, image, size):
        out = P()
        status = self.c.jaclip_image_resize_crop(ctypes.byref(out), image, size)
        assert status == OK, self.error()
        return self._array(out, np.uint8)

    def preprocess(self, image, size):
        out = P()
        images = (P * 1)(image)
        mean = (ctypes.c_float * 3)(*MEAN)
        std = (ctypes.c_float * 3)(*STD)
        status = self.c.jaclip_image_preprocess(ctypes.byref(out), images, 1, size, mean, std)
        assert status == OK, self.error()
        return self._array(out, np.float32)[0]


@pytest.fixture(scope="module")
def jc():
    if not os.path.exists(LIBRARY):
        pytest.fail(f"{LIBRARY} is missing: run `make` first")
    return Jaclip(LIBRARY)


# ---- the reference -----------------------------------------------------------------------------------

def reference(pil_image, size):
    """(uint8 HxWx3 after resize+crop+RGB, normalised float CxHxW), as rinna's pipeline computes them."""
    resized = T.Resize(size, interpolation=T.InterpolationMode.BILINEAR)(pil_image)
    rgb = T.CenterCrop(size)(resized).convert("RGB")
    tensor = T.Normalize(mean=MEAN, std=STD)(T.ToTensor()(rgb))
    return np.asarray(rgb), tensor.numpy()


def pil_open(path=None, data=None):
    """The PIL image, or None when PIL refuses the file."""
    try:
        image = Image.open(path if data is None else io.BytesIO(data))
        image.load()
        return image
    except Exception:  # PIL raises many types for bad files; any of them is a refusal
        return None


def compare(jc, image_handle, pil_image, size, what):
    ours_u8 = jc.resize_crop(image_handle, size)
    ref_u8, ref_float = reference(pil_image, size)
    assert ours_u8.shape == ref_u8.shape
    mismatch = int(np.count_nonzero(ours_u8 != ref_u8))
    assert mismatch == 0, f"{what} size {size}: {mismatch} uint8 values differ from PIL"
    ours_float = jc.preprocess(image_handle, size)
    diff = float(np.max(np.abs(ours_float - ref_float)))
    assert diff <= 1e-6, f"{what} size {size}: float differs by {diff}"
    return diff


STATS = {"compared": 0, "identical": 0, "refused": 0, "max_diff": 0.0}

# The formats both PIL and libjaclip read (HEIF: libjaclip only, tested against heif-convert).
READ_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")


def reference_can_preprocess(pil_image):
    """False when the reference pipeline itself fails on an image PIL has opened."""
    try:
        reference(pil_image, 7)
        return True
    except (ValueError, OSError):
        return False


def check_file(jc, path=None, data=None, flags=0, sizes=(224,)):
    """Loads with both; PIL refusing means libjaclip must refuse with a message, else compare."""
    what = path or f"<{len(data)} bytes>"
    pil_image = pil_open(path, data)
    status, handle = jc.load(path, data, flags)
    if pil_image is None:
        assert status != OK, f"{what}: PIL refuses it, libjaclip accepted it"
        assert jc.error(), f"{what}: refused without a message"
        STATS["refused"] += 1
        return None
    if pil_image.format not in READ_FORMATS:
        # libjaclip reads these formats only (docs/images.md); it must say so.
        assert status == IMAGE_DECODE and "unknown image format" in jc.error(), (what, status, jc.error())
        return None
    if not reference_can_preprocess(pil_image):
        # PIL opens it, but the reference's Resize cannot (16-bit grey TIFF is PIL's I;16): refused.
        assert status == IMAGE_DECODE and jc.error(), (what, status, jc.error())
        STATS["refused"] += 1
        return None
    assert status == OK, f"{what}: PIL opens it, libjaclip says: {jc.error()}"
    try:
        # PIL 9.4 has turned a TIFF by its orientation tag on loading already, and its exif_transpose
        # would turn it again (a PIL defect libjaclip does not copy: docs/images.md).
        if flags & EXIF_TRANSPOSE and pil_image.format != "TIFF":
            pil_image = ImageOps.exif_transpose(pil_image)
        # PIL's RGBX (TIFF RGB with an unspecified extra sample) resizes channel by channel and drops X:
        # libjaclip drops X first and calls the image RGB.
        pil_mode = "RGB" if pil_image.mode == "RGBX" else pil_image.mode
        assert jc.c.jaclip_image_mode(handle).decode() == pil_mode, what
        assert (jc.c.jaclip_image_width(handle), jc.c.jaclip_image_height(handle)) == pil_image.size, what
        sizes = list(sizes)
        if pil_image.width == pil_image.height and pil_image.width <= 4096:
            sizes.append(pil_image.width)  # no resize: checks the decoded pixels themselves
        for size in sizes:
            diff = compare(jc, handle, pil_image, size, what)
            STATS["compared"] += 1
            STATS["identical"] += 1
            STATS["max_diff"] = max(STATS["max_diff"], diff)
    finally:
        jc.c.jaclip_image_free(handle)
    return pil_image


# ---- every file of the shared test data --------------------------------------------------------------

def shared_files():
    if not os.path.isdir(IMAGES):
        return []
    return sorted(p for p in glob.glob(os.path.join(IMAGES, "**", "*"), recursive=True) if os.path.isfile(p))


@pytest.mark.parametrize("path", shared_files() or ["<missing>"], ids=lambda p: os.path.relpath(p, IMAGES)
                         if p != "<missing>" else p)
def test_shared_image(jc, path):
    if path == "<missing>":
        pytest.skip(f"{IMAGES} is missing (../shared/data is not beside this checkout)")
    check_file(jc, path, sizes=(224, 100, 7))
    with open(path, "rb") as f:
        data = f.read()
    if data:
        check_file(jc, data=data)  # the same through the memory loader


def test_shared_images_accounted_for(jc):
    files = shared_files()
    if not files:
        pytest.skip(f"{IMAGES} is missing (../shared/data is not beside this checkout)")
    pngs = [f for f in files if f.endswith(".png")]
    refused = [f for f in pngs if pil_open(f) is None]
    # Every deliberately corrupted PngSuite file except xcsn0g01 (bad IDAT CRC, which PIL never checks).
    assert sorted(os.path.basename(f) for f in refused) == sorted(
        os.path.basename(f) for f in pngs if os.path.basename(f).startswith("x") and "xcsn0g01" not in f)
    for f in refused:
        status, _ = jc.load(f)
        assert status == IMAGE_DECODE and jc.error(), f


# ---- generated images ------------------------------------------------------------------------------------

def gradient(width, height, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), (x + y) % 256], axis=-1)
    noise = rng.integers(0, 64, size=(height, width, 3))
    return ((base + noise) % 256).astype(np.uint8)


def make_rgb(width, height, seed=0):
    return Image.fromarray(gradient(width, height, seed), "RGB")


SHAPES = [(1, 1), (224, 224), (225, 224), (224, 225), (226, 224), (227, 300), (300, 301), (333, 250),
          (2000, 3), (3, 2000), (1, 500), (500, 1), (640, 480), (1001, 999), (50, 40), (223, 224), (100, 1000)]


def generated_cases():
    """(name, PIL image, save format, save options)."""
    cases = []
    for w, h in SHAPES:
        cases.append((f"rgb-{w}x{h}.png", make_rgb(w, h), "PNG", {}))
    base = make_rgb(333, 250, 1)
    rgba = base.copy()
    alpha = np.asarray(make_rgb(333, 250, 2))[..., 0].copy()
    alpha[:40] = 0
    alpha[40:80] = 255
    rgba.putalpha(Image.fromarray(alpha, "L"))
    cases += [
        ("mode-1.png", base.convert("1"), "PNG", {}),
        ("mode-L.png", base.convert("L"), "PNG", {}),
        ("mode-LA.png", rgba.convert("LA"), "PNG", {}),
        ("mode-P.png", base.convert("P", palette=Image.Palette.ADAPTIVE, colors=200), "PNG", {}),
        ("mode-P-trns.png", base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG",
         {"transparency": bytes(range(0, 255, 16))}),
        ("mode-P-4bit.png", base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", {"bits": 4}),
        ("mode-RGB.png", base, "PNG", {}),
        ("mode-RGBA.png", rgba, "PNG", {}),
        ("mode-I16.png", Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 3 % 400)
                                          .astype(np.uint16), "I;16"), "PNG", {}),
        ("mode-RGB-interlaced.png", base, "PNG", {"optimize": False}),
        ("grey.jpg", base.convert("L"), "JPEG", {"quality": 90}),
        ("420.jpg", base, "JPEG", {"quality": 85, "subsampling": 2}),
        ("422.jpg", base, "JPEG", {"quality": 85, "subsampling": 1}),
        ("444.jpg", base, "JPEG", {"quality": 95, "subsampling": 0}),
        ("progressive.jpg", base, "JPEG", {"quality": 80, "progressive": True}),
        ("cmyk.jpg", base.convert("CMYK"), "JPEG", {"quality": 90}),
        ("odd-420.jpg", make_rgb(2001, 7, 3), "JPEG", {"quality": 75}),
        ("tall-420.jpg", make_rgb(5, 1500, 4), "JPEG", {"quality": 75}),
        ("big.jpg", make_rgb(1200, 900, 5), "JPEG", {"quality": 85, "progressive": True}),
    ]
    return cases


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for name, image, fmt, options in generated_cases():
        path = str(folder / name)
        image.save(path, fmt, **options)
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", [c[0] for c in generated_cases()])
def test_generated_image(jc, generated, name):
    pil_image = check_file(jc, generated[name], sizes=(224, 64, 1))
    assert pil_image is not None, f"PIL could not read back {name}"


def test_interlaced_png(jc, tmp_path):
    # PIL cannot write Adam7; libpng's own test images cover it (PngSuite basi*). Check one exists.
    if not os.path.isdir(IMAGES):
        pytest.skip(f"{IMAGES} is missing (../shared/data is not beside this checkout)")
    check_file(jc, os.path.join(IMAGES, "pngsuite", "basi2c08.png"), sizes=(224, 32, 5))


def test_from_pixels_matches_pil(jc):
    formats = {"L": 1, "RGB": 2, "RGBA": 3, "LA": 4}
    for mode, fmt in formats.items():
        for w, h in [(333, 250), (224, 224), (3, 700)]:
            pil_image = make_rgb(w, h, 7)
            if mode != "RGB":
                rgba = pil_image.copy()
                rgba.putalpha(Image.fromarray(np.asarray(make_rgb(w, h, 8))[..., 1].copy(), "L"))
                pil_image = rgba.convert(mode)
            raw = pil_image.tobytes()
            row = len(raw) // h
            padded = b"".join(raw[i * row:(i + 1) * row] + b"\xee" * 5 for i in range(h))
            handle = P()
            status = jc.c.jaclip_image_from_pixels(ctypes.byref(handle), padded, w, h, row + 5, fmt)
            assert status == OK, jc.error()
            try:
                assert jc.c.jaclip_image_mode(handle).decode() == mode
                compare(jc, handle, pil_image, 224, f"from_pixels {mode} {w}x{h}")
            finally:
                jc.c.jaclip_image_free(handle)


# ---- EXIF orientation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(jc, tmp_path, fmt, orientation):
    image = make_rgb(300, 240, 9)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / f"exif{orientation}.{fmt.lower()}")
    image.save(path, fmt, exif=exif.tobytes())
    check_file(jc, path)  # default: no rotation, as PIL's open
    check_file(jc, path, flags=EXIF_TRANSPOSE)


def png_chunks(data):
    """[(name, body)] of a PNG file's chunks."""
    import struct
    pos, chunks = 8, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_from_chunks(chunks):
    import struct
    import zlib
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(body)) + name + body +
                                       struct.pack(">I", zlib.crc32(name + body)) for name, body in chunks)


XMP = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" {}/></rdf:RDF></x:xmpmeta>')


# Issue 13 item 10: where PIL's exif_transpose finds the orientation of a loaded PNG beyond an eXIf
# before IDAT: an eXIf after IDAT (the last one wins), else XMP in an iTXt, zTXt or tEXt chunk.
@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("where", ["exif after IDAT", "XMP iTXt", "XMP attribute zTXt", "XMP element tEXt after IDAT",
                                   "last exif wins", "XMP ignored when exif has it"])
def test_png_orientation_as_pil_finds_it(jc, tmp_path, where, orientation):
    import zlib
    buf = io.BytesIO()
    make_rgb(300, 240, 9).save(buf, "PNG")
    chunks = png_chunks(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = orientation
    other = Image.Exif()
    other[0x0112] = 2
    exif_body = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\0\0") else exif.tobytes()
    other_body = other.tobytes()[6:] if other.tobytes().startswith(b"Exif\0\0") else other.tobytes()
    key = b"XML:com.adobe.xmp\0"
    attr = XMP.format(f'tiff:Orientation="{orientation}"').encode()
    element = XMP.format("").replace("/></rdf", f"><tiff:Orientation>{orientation}</tiff:Orientation>"
                                     "</rdf:Description></rdf").encode()
    idat = next(i for i, (name, _) in enumerate(chunks) if name == b"IDAT")
    before, image_data, after = chunks[:idat], [c for c in chunks if c[0] == b"IDAT"], [chunks[-1]]
    extra_before, extra_after = [], []
    if where == "exif after IDAT":
        extra_after = [(b"eXIf", exif_body)]
    elif where == "XMP iTXt":
        extra_before = [(b"iTXt", key + b"\0\0\0\0" + attr)]
    elif where == "XMP attribute zTXt":
        extra_before = [(b"zTXt", key + b"\0" + zlib.compress(attr))]
    elif where == "XMP element tEXt after IDAT":
        extra_after = [(b"tEXt", key + element)]
    elif where == "last exif wins":
        extra_before, extra_after = [(b"eXIf", other_body)], [(b"eXIf", exif_body)]
    else:
        extra_before = [(b"eXIf", exif_body), (b"iTXt", key + b"\0\0\0\0" + XMP.format('tiff:Orientation="5"').encode())]
    path = str(tmp_path / "oriented.png")
    with open(path, "wb") as f:
        f.write(png_from_chunks(before + extra_before + image_data + extra_after + after))
    pil_image = check_file(jc, path, flags=EXIF_TRANSPOSE)
    # The case is one where PIL does rotate: otherwise this test could not fail.
    assert pil_image.size == ((240, 300) if orientation in (6, 8) else (300, 240)), where


# ---- damaged data ---------------------------------------------------------------------------------------

def truncations(data):
    n = len(data)
    points = sorted({0, 1, 2, 3, 8, 20, 100, 300, n // 4, n // 2, (3 * n) // 4, n - 100, n - 3, n - 2, n - 1})
    return [data[:p] for p in points if 0 <= p < n]


@pytest.mark.parametrize("name", ["420.jpg", "progressive.jpg", "grey.jpg", "mode-RGB.png", "mode-P.png",
                                  "mode-I16.png", "cmyk.jpg"])
def test_truncated(jc, generated, name):
    with open(generated[name], "rb") as f:
        data = f.read()
    for piece in truncations(data):
        check_file(jc, data=piece)


def test_truncated_shared_jpeg(jc):
    path = os.path.join(IMAGES, "libjpeg-turbo", "testorig.jpg")
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing (../shared/data is not beside this checkout)")
    with open(path, "rb") as f:
        data = f.read()
    for piece in truncations(data):
        check_file(jc, data=piece)


def test_random_and_corrupted_bytes(jc, generated):
    rng = np.random.default_rng(1234)
    for n in (0, 1, 3, 16, 1000):
        check_file(jc, data=rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    # Valid signatures followed by noise.
    for prefix in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"):
        check_file(jc, data=prefix + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    # Flipped bytes in the middle of real files: whatever PIL decides, we must agree or refuse cleanly.
    for name in ("420.jpg", "mode-RGB.png"):
        with open(generated[name], "rb") as f:
            data = bytearray(f.read())
        for i in range(5):
            damaged = bytearray(data)
            pos = int(rng.integers(len(data) // 3, len(data) - 4))
            damaged[pos] ^= 0x5A
            pil_image = pil_open(data=bytes(damaged))
            status, handle = jc.load(data=bytes(damaged))
            if status == OK:
                jc.c.jaclip_image_free(handle)
            else:
                assert jc.error()
            if pil_image is None and status == OK and name.endswith(".png"):
                pytest.fail(f"{name} with byte {pos} flipped: PIL refuses it, libjaclip accepts it")


def test_float_exactly_equal(jc, generated):
    """Not just within 1e-6: the normalisation rounds exactly as torch's float32 ops do."""
    paths = [generated["420.jpg"], generated["mode-RGBA.png"]]
    dog = os.path.join(IMAGES, "reference", "dog.jpeg")
    if os.path.exists(dog):
        paths.append(dog)
    for path in paths:
        status, handle = jc.load(path)
        assert status == OK, jc.error()
        try:
            ours = jc.preprocess(handle, 224)
        finally:
            jc.c.jaclip_image_free(handle)
        _, ref = reference(Image.open(path), 224)
        assert np.array_equal(ours, ref), f"{path}: max diff {np.max(np.abs(ours - ref))}"


def test_pixel_limit(jc, generated):
    status, _ = jc.load(generated["rgb-640x480.png"], max_pixels=640 * 480 - 1)
    assert status == IMAGE_TOO_LARGE and jc.error()
    status, _ = jc.load(generated["big.jpg"], max_pixels=1000)
    assert status == IMAGE_TOO_LARGE and jc.error()
    status, handle = jc.load(generated["rgb-640x480.png"], max_pixels=640 * 480)
    assert status == OK
    jc.c.jaclip_image_free(handle)


def test_summary(jc):
    """Prints the counts gathered by the tests above (run last in file order)."""
    print(f"\nimage parity: {STATS['compared']} comparisons, {STATS['identical']} byte-identical, "
          f"{STATS['refused']} refusals matched PIL, max float diff {STATS['max_diff']:.3g}")
