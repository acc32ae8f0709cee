#!/usr/bin/env python3
"""Writes damaged and foreign model files for the error-path tests, derived from a good model file.

usage: make_bad_models.py GOOD_MODEL OUT_DIR
"""
import os
import sys

import torch
from torch import Tensor

CONFIG, TOKENIZER = "jaclip/config.txt", "jaclip/tokenizer.model"


class WrongSignature(torch.nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.jit.export
    def encode_image(self, pixel_values: Tensor, scale: float) -> Tensor:
        return pixel_values * scale

    @torch.jit.export
    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return input_ids.float()


class WrongOutput(torch.nn.Module):
    """Right signatures, wrong output shape: must be caught at encode time, not crash."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.jit.export
    def encode_image(self, pixel_values: Tensor) -> Tensor:
        return pixel_values.flatten(1)[:, :7]

    @torch.jit.export
    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return input_ids.float()


def main():
    good, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    extra = {CONFIG: "", TOKENIZER: ""}
    module = torch.jit.load(good, _extra_files=extra)
    config = extra[CONFIG].decode() if isinstance(extra[CONFIG], bytes) else extra[CONFIG]

    def save(name, mod, files):
        torch.jit.save(mod, os.path.join(out, name), _extra_files=files)

    save("wrong-version.jaclip", module,
         {CONFIG: config.replace("format_version=1", "format_version=99"), TOKENIZER: extra[TOKENIZER]})
    save("no-config.jaclip", module, {TOKENIZER: extra[TOKENIZER]})
    save("no-tokenizer.jaclip", module, {CONFIG: config})
    save("bad-tokenizer.jaclip", module, {CONFIG: config, TOKENIZER: b"this is not a sentencepiece model"})
    save("bad-config-value.jaclip", module,
         {CONFIG: config.replace("image_size=224", "image_size=-3"), TOKENIZER: extra[TOKENIZER]})
    # Loads as a config, but (x / 255 - mean) / 1e-40 is inf for every pixel: NaN features.
    save("bad-image-std.jaclip", module, {CONFIG: "\n".join(
        "image_std=1e-40,0.26130258,0.27577711" if line.startswith("image_std=") else line
        for line in config.split("\n")), TOKENIZER: extra[TOKENIZER]})
    save("wrong-signature.jaclip", torch.jit.script(WrongSignature()), {CONFIG: config, TOKENIZER: extra[TOKENIZER]})
    save("wrong-output.jaclip", torch.jit.script(WrongOutput()), {CONFIG: config, TOKENIZER: extra[TOKENIZER]})
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(out, "truncated.jaclip"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(out, "not-a-model.jaclip"), "wb") as f:
        f.write(b"Just some text, not a TorchScript archive.\n" * 10)
    with open(os.path.join(out, "empty.jaclip"), "wb") as f:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
