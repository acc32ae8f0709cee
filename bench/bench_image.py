#!/usr/bin/python3
"""Decode + preprocess throughput: libjaclip (ctypes) against PIL + torchvision, in one run.
Images: ../shared/data/images/reference/dog.jpeg (3375x2250 progressive) and a generated 12-megapixel
baseline JPEG (4240x2832). Usage: bench/bench_image.py [--repeat N]. Not part of the tests."""
import argparse
import ctypes
import os
import tempfile
import time

import numpy as np
from PIL import Image
import torchvision.transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.environ.get("JACLIP_LIBRARY", os.path.join(ROOT, "build", "libjaclip.so"))
SHARED_DATA = os.path.join(ROOT, os.environ.get("JACLIP_SHARED_DATA", os.path.join("..", "shared", "data")))
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
P = ctypes.c_void_p

REFERENCE = T.Compose([
    T.Resize(224, interpolation=T.InterpolationMode.BILINEAR),
    T.CenterCrop(224),
    lambda image: image.convert("RGB"),
    T.ToTensor(),
    T.Normalize(MEAN, STD),
])


def load_library():
    c = ctypes.CDLL(LIBRARY)
    c.jaclip_image_load.argtypes = [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint32]
    c.jaclip_image_preprocess.argtypes = [ctypes.POINTER(P), ctypes.POINTER(P), ctypes.c_size_t, ctypes.c_uint32,
                                          ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    c.jaclip_image_free.argtypes = [P]
    c.jaclip_tensor_free.argtypes = [P]
    c.jaclip_tensor_data.argtypes = [P]
    c.jaclip_tensor_data.restype = P
    c.jaclip_last_error.restype = ctypes.c_char_p
    return c


def jaclip_once(c, path):
    image = P()
    if c.jaclip_image_load(ctypes.byref(image), path.encode(), 0, 0) != 0:
        raise RuntimeError(c.jaclip_last_error().decode())
    return jaclip_preprocess(c, image)


def jaclip_preprocess(c, image):
    """The model's pixels of a loaded image (freed here), as a (3, 224, 224) array."""
    out = P()
    mean, std = (ctypes.c_float * 3)(*MEAN), (ctypes.c_float * 3)(*STD)
    status = c.jaclip_image_preprocess(ctypes.byref(out), (P * 1)(image), 1, 224, mean, std)
    c.jaclip_image_free(image)
    if status != 0:
        raise RuntimeError(c.jaclip_last_error().decode())
    values = np.ctypeslib.as_array(ctypes.cast(c.jaclip_tensor_data(out), ctypes.POINTER(ctypes.c_float)),
                                   shape=(3, 224, 224)).copy()
    c.jaclip_tensor_free(out)
    return values


def reference_once(path):
    with Image.open(path) as image:
        return REFERENCE(image).numpy()


def rate(fn, repeat):
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return repeat / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    c = load_library()
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "12mp.jpg")
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:2832, 0:4240]
        pixels = np.stack([x % 256, y % 256, (x // 7 + y // 5) % 256], axis=-1) + rng.integers(0, 32, (2832, 4240, 3))
        Image.fromarray((pixels % 256).astype(np.uint8)).save(big, quality=90)
        images = [("12-megapixel JPEG 4240x2832", big)]
        dog = os.path.join(SHARED_DATA, "images", "reference", "dog.jpeg")
        if os.path.exists(dog):
            images.insert(0, ("dog.jpeg 3375x2250 progressive", dog))
        else:
            print(f"skipping dog.jpeg: {dog} is missing")
        for name, path in images:
            same = np.array_equal(jaclip_once(c, path), reference_once(path))
            ours = rate(lambda: jaclip_once(c, path), args.repeat)
            theirs = rate(lambda: reference_once(path), args.repeat)
            print(f"{name}: libjaclip {ours:.2f} images/s, PIL+torchvision {theirs:.2f} images/s, "
                  f"ratio {ours / theirs:.2f}x, outputs identical: {same}")


if __name__ == "__main__":
    main()
