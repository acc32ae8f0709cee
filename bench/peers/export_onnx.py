#!/usr/bin/env python3
"""ONNX graphs of the two towers for the ONNX Runtime peer (make bench-peers), exported at opset 17 from
the eager reference model (test/python/reference_cloob.py) with torch.onnx.export, then an int8 copy
made as onnxruntime.quantization.quantize_dynamic would make it (quantize_int8.py).

    export_onnx.py CHECKPOINT OUT_DIR   → OUT_DIR/{image,text}.onnx and {image,text}-int8.onnx
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "python"))
from reference_cloob import ReferenceCloob  # noqa: E402
from quantize_int8 import quantize_file  # noqa: E402


class ImageTower(torch.nn.Module):
    def __init__(self, ref):
        super().__init__()
        self.ref = ref

    def forward(self, pixel_values):
        return self.ref.image_features(pixel_values)


class TextTower(torch.nn.Module):
    def __init__(self, ref):
        super().__init__()
        self.ref = ref

    def forward(self, input_ids, attention_mask):
        return self.ref.text_features(input_ids, attention_mask)


def main():
    checkpoint, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    ref = ReferenceCloob(checkpoint)
    # The same LayerNorm, its normalised shape taken from the weight: the exporter needs it constant.
    ref._ln = lambda x, prefix, eps: F.layer_norm(x, tuple(ref.sd[prefix + ".weight"].shape),
                                                  ref.sd[prefix + ".weight"], ref.sd[prefix + ".bias"], eps)
    size = ref.config["vision_config"].get("image_size", 224)
    with torch.no_grad():
        torch.onnx.export(ImageTower(ref), (torch.randn(2, 3, size, size),), os.path.join(out_dir, "image.onnx"),
                          input_names=["pixel_values"], output_names=["features"], opset_version=17,
                          dynamic_axes={"pixel_values": {0: "batch"}, "features": {0: "batch"}})
        ids = torch.randint(5, 1000, (2, 8))
        torch.onnx.export(TextTower(ref), (ids, torch.ones_like(ids)), os.path.join(out_dir, "text.onnx"),
                          input_names=["input_ids", "attention_mask"], output_names=["features"], opset_version=17,
                          dynamic_axes={"input_ids": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"}, "features": {0: "batch"}})
    for tower in ("image", "text"):
        n = quantize_file(os.path.join(out_dir, f"{tower}.onnx"), os.path.join(out_dir, f"{tower}-int8.onnx"))
        print(f"{tower}: {n} MatMul weights quantized to int8")


if __name__ == "__main__":
    main()
