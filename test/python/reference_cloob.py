"""An eager PyTorch forward of a CLOOB checkpoint written straight from its Hugging Face state-dict keys.
A CLIP checkpoint of rinna's (model_type "clip") has the same towers and projections under the same
keys, plus the learned scalar logit_scale: the same forward serves it, and default_scale reads that.

It shares no code with tools/jaclip_convert, so a wrong key mapping, a wrong LayerNorm placement or a
wrong GELU in the converter makes the parity tests fail. It follows transformers' ViTModel and
BertModel step by step (reference-behaviour.md §1), including their order of additions.
"""
import json
import math
import os

import torch
import torch.nn.functional as F


class ReferenceCloob:
    def __init__(self, checkpoint_dir, gelu=F.gelu):
        with open(os.path.join(checkpoint_dir, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)
        self.sd = torch.load(os.path.join(checkpoint_dir, "pytorch_model.bin"), map_location="cpu")
        self.gelu = gelu

    @property
    def default_scale(self):
        """The probability scale of rinna's evaluation: exp(logit_scale) for CLIP, 100 for CLOOB."""
        if self.config.get("model_type") == "clip":
            return float(torch.exp(self.sd["logit_scale"].float()))
        return 100.0

    def _linear(self, x, prefix, bias=True):
        return F.linear(x, self.sd[prefix + ".weight"], self.sd[prefix + ".bias"] if bias else None)

    def _ln(self, x, prefix, eps):
        return F.layer_norm(x, x.shape[-1:], self.sd[prefix + ".weight"], self.sd[prefix + ".bias"], eps)

    def _attention(self, h, prefix_qkv, heads, mask_add):
        b, n, c = h.shape
        d = c // heads

        def split(t):
            return t.view(b, n, heads, d).permute(0, 2, 1, 3)

        q = split(self._linear(h, prefix_qkv + ".query"))
        k = split(self._linear(h, prefix_qkv + ".key"))
        v = split(self._linear(h, prefix_qkv + ".value"))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        if mask_add is not None:
            scores = scores + mask_add
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        return ctx.permute(0, 2, 1, 3).reshape(b, n, c)

    @torch.no_grad()
    def image_features(self, pixel_values):
        cfg = self.config["vision_config"]
        eps, heads = cfg.get("layer_norm_eps", 1e-12), cfg["num_attention_heads"]
        p = "vision_model."
        x = F.conv2d(pixel_values, self.sd[p + "embeddings.patch_embeddings.projection.weight"],
                     self.sd[p + "embeddings.patch_embeddings.projection.bias"], stride=cfg["patch_size"])
        x = x.flatten(2).transpose(1, 2)
        cls = self.sd[p + "embeddings.cls_token"].expand(x.shape[0], -1, -1)
        h = torch.cat([cls, x], dim=1) + self.sd[p + "embeddings.position_embeddings"]
        for i in range(cfg["num_hidden_layers"]):
            lp = f"{p}encoder.layer.{i}."
            a = self._attention(self._ln(h, lp + "layernorm_before", eps), lp + "attention.attention", heads, None)
            h = self._linear(a, lp + "attention.output.dense") + h
            m = self.gelu(self._linear(self._ln(h, lp + "layernorm_after", eps), lp + "intermediate.dense"))
            h = self._linear(m, lp + "output.dense") + h
        h = self._ln(h, p + "layernorm", eps)
        return F.linear(h[:, 0], self.sd["visual_projection.weight"])

    @torch.no_grad()
    def text_features(self, input_ids, attention_mask):
        cfg = self.config["text_config"]
        eps, heads = cfg.get("layer_norm_eps", 1e-12), cfg["num_attention_heads"]
        p = "text_model."
        n = input_ids.shape[1]
        position_ids = torch.arange(n).unsqueeze(0)
        token_type = torch.zeros_like(input_ids)
        h = F.embedding(input_ids, self.sd[p + "embeddings.word_embeddings.weight"])
        h = h + F.embedding(token_type, self.sd[p + "embeddings.token_type_embeddings.weight"])
        h = h + F.embedding(position_ids, self.sd[p + "embeddings.position_embeddings.weight"])
        h = self._ln(h, p + "embeddings.LayerNorm", eps)
        mask_add = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for i in range(cfg["num_hidden_layers"]):
            lp = f"{p}encoder.layer.{i}."
            a = self._attention(h, lp + "attention.self", heads, mask_add)
            a = self._ln(self._linear(a, lp + "attention.output.dense") + h, lp + "attention.output.LayerNorm", eps)
            m = self.gelu(self._linear(a, lp + "intermediate.dense"))
            h = self._ln(self._linear(m, lp + "output.dense") + a, lp + "output.LayerNorm", eps)
        return F.linear(h[:, 0], self.sd["text_projection.weight"])
