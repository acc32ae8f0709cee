#!/usr/bin/env python3
"""Tokens per second: libjaclip's tokenizer (ctypes, one batch encode per round) against the Python
reference (Debian's python3-sentencepiece plus lower-casing, special-token splitting and framing, as
in test/python/test_tokenizer_parity.py), over the shared texts, in one run.

    /usr/bin/python3 bench/bench_tokenizer.py [--rounds N] [--library build/libjaclip.so]
"""
import argparse
import ctypes
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "python"))
import test_tokenizer_parity as parity  # noqa: E402  (the reference and the ctypes wrapper)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--library", default=parity.LIBRARY)
    ap.add_argument("--max-length", type=int, default=parity.L)
    args = ap.parse_args()

    texts = []
    for path in parity.TEXTS:
        with open(path, "rb") as f:
            texts += [line for line in f.read().decode("utf-8").split("\r\n")]
    encoded = [t.encode("utf-8") for t in texts]
    ref = parity.Reference(parity.MODEL)
    lib = parity.Library(args.library)
    tokens = sum(len(ref.tokenize(t)) for t in texts)  # real ids before truncation, the work done

    arr = (ctypes.c_char_p * len(encoded))(*encoded)
    lens = (ctypes.c_size_t * len(encoded))(*[len(t) for t in encoded])

    def run_lib():
        ids, mask = ctypes.c_void_p(), ctypes.c_void_p()
        st = lib.lib.jaclip_tokenizer_encode(ctypes.byref(ids), ctypes.byref(mask), lib.tok, arr, lens,
                                             len(encoded), args.max_length)
        assert st == 0, lib.lib.jaclip_last_error()
        lib.lib.jaclip_tensor_free(ids)
        lib.lib.jaclip_tensor_free(mask)

    def run_ref():
        for t in texts:
            ref.frame(ref.tokenize(t), args.max_length)

    def best(fn):
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_lib, t_ref = best(run_lib), best(run_ref)
    print(f"{len(texts)} texts, {sum(map(len, encoded))} bytes, {tokens} tokens; best of {args.rounds} rounds")
    print(f"libjaclip  : {tokens / t_lib:12.0f} tokens/s  ({t_lib * 1e3:8.1f} ms)")
    print(f"reference  : {tokens / t_ref:12.0f} tokens/s  ({t_ref * 1e3:8.1f} ms)")
    print(f"ratio      : {t_ref / t_lib:.2f}x")
    lib.close()


if __name__ == "__main__":
    main()
