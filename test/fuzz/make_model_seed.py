#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_model: jaclip model files stripped to the minimum (a 4-wide module
of one parameter, a 60-piece SentencePiece model trained here, the configuration record), so that
mutations land on the archive structure rather than on megabytes of weights.

usage: make_model_seed.py OUT_DIR
"""
import io
import os
import sys

import sentencepiece as spm
import torch
from torch import Tensor

CONFIG, TOKENIZER = "jaclip/config.txt", "jaclip/tokenizer.model"
DIM = 4


class Minimal(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.linspace(0.5, 2.0, DIM))

    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.jit.export
    def encode_image(self, pixel_values: Tensor) -> Tensor:
        return pixel_values.flatten(1)[:, :4] * self.proj

    @torch.jit.export
    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return (input_ids * attention_mask)[:, :1].float() * self.proj


def tokenizer_bytes():
    words = ["犬", "猫", "象", "の写真", "が走る", "が座っている", "dog", "cat", "a photo of"]
    lines = [" ".join(words[(i * k) % len(words)] for k in range(1, 6)) for i in range(50)]
    model = io.BytesIO()
    # identity normalisation: no precompiled NFKC map, so the model stays a few KB.
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=60,
                                   user_defined_symbols=["[PAD]", "[CLS]", "[SEP]", "[MASK]"],
                                   normalization_rule_name="identity", character_coverage=0.98,
                                   hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tok = tokenizer_bytes()
    vocab = spm.SentencePieceProcessor(model_proto=tok).get_piece_size()
    config = "\n".join([
        "format=jaclip-model", "format_version=1", "precision=fp32", f"embedding_dim={DIM}", "image_size=8",
        "image_mean=0.48145466,0.4578275,0.40821073", "image_std=0.26862954,0.26130258,0.27577711",
        "max_text_length=16", "max_position_embeddings=16", f"vocab_size={vocab}", "pad_id=3", "cls_id=4", ""])
    module = torch.jit.script(Minimal())
    torch.jit.save(module, os.path.join(out, "minimal.jaclip"), _extra_files={CONFIG: config, TOKENIZER: tok})
    torch.jit.save(module, os.path.join(out, "no-extras.jaclip"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
