"""Writing the libjaclip model file: a TorchScript archive plus two extra files.

`jaclip/config.txt` holds `key=value` lines (format, format_version, sizes, mean/std, special ids,
precision); `jaclip/tokenizer.model` holds the SentencePiece model. docs/model-format.md describes both.
"""
import io

import torch

from .cloob import CloobModel, hf_to_module_state

FORMAT_NAME = "jaclip-model"
# Version 2 adds family= and logit_scale=; CLOOB files stay version 1 so older libraries read them.
FORMAT_VERSION = 1
FORMAT_VERSION_FAMILY = 2
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_LENGTH = 77
SPECIAL_IDS = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": 3, "cls_id": 4, "sep_id": 5, "mask_id": 6}
CONFIG_FILE = "jaclip/config.txt"
TOKENIZER_FILE = "jaclip/tokenizer.model"


def build_module(cfg, hf_state, dtype_name):
    model = CloobModel(cfg)
    model.load_state_dict(hf_to_module_state(cfg, hf_state), strict=True)
    if dtype_name == "int8":
        # Dynamic int8 of the transformer layers' Linear layers (weights int8, activations quantized
        # per batch); the patch embedding and the projections stay fp32. Saved unpacked, re-packed by
        # the quantized engine libjaclip selects at load (oneDNN).
        model = model.eval().requires_grad_(False)
        qconfig = torch.ao.quantization.default_dynamic_qconfig
        model = torch.ao.quantization.quantize_dynamic(
            model, {"vision.layers": qconfig, "text.layers": qconfig}, dtype=torch.qint8)
        return torch.jit.script(model)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    model = model.to(dtype).eval().requires_grad_(False)
    return torch.jit.script(model)


def config_text(cfg, dtype_name, source, logit_scale=None):
    family = {}
    if cfg.family != "cloob":
        # The raw parameter, exactly as a float32 (repr of the float64 it widens to); the library's
        # default probability scale is exp() of it.
        family = {"family": cfg.family, "logit_scale": repr(float(logit_scale))}
    lines = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION_FAMILY if family else FORMAT_VERSION,
        **family,
        "source": source.replace("\n", " "),
        "precision": dtype_name,
        "embedding_dim": cfg.projection_dim,
        "image_size": cfg.vision.image_size,
        "image_mean": ",".join(repr(x) for x in IMAGE_MEAN),
        "image_std": ",".join(repr(x) for x in IMAGE_STD),
        "max_text_length": MAX_TEXT_LENGTH,
        "max_position_embeddings": cfg.text.max_position_embeddings,
        "vocab_size": cfg.text.vocab_size,
        **SPECIAL_IDS,
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def write_model_file(path, cfg, hf_state, tokenizer_bytes, dtype_name, source):
    if cfg.text.max_position_embeddings < MAX_TEXT_LENGTH:
        raise ValueError(f"max_position_embeddings {cfg.text.max_position_embeddings} < {MAX_TEXT_LENGTH}")
    scripted = build_module(cfg, hf_state, dtype_name)
    logit_scale = hf_state["logit_scale"].item() if cfg.family == "clip" else None
    extra = {CONFIG_FILE: config_text(cfg, dtype_name, source, logit_scale), TOKENIZER_FILE: tokenizer_bytes}
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files=extra)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return scripted
