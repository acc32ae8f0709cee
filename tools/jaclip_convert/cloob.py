"""The CLOOB model in plain PyTorch, written to be scripted with TorchScript.

Layout follows reference-behaviour.md §1: a Hugging Face ViTModel (pre-norm) and BertModel (post-norm),
no poolers, bias-free projections. Two changes that do not alter the result beyond float rounding make
it faster: q, k and v are one fused Linear, the patch embedding is a matmul over unfolded patches (works
for every dtype), and the last layer of each tower computes only the [CLS] token, the only one read.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, mask_add: Optional[Tensor], cls_only: bool) -> Tensor:
        batch, length, hidden = h.shape
        qkv = self.qkv(h).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if cls_only:
            q = q[:, :, :1]
        scores = torch.matmul(q, k.transpose(-1, -2)) / (self.head_dim ** 0.5)
        if mask_add is not None:
            scores = scores + mask_add
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, q.shape[2], hidden)
        return self.out(context)


class Mlp(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.gelu(self.up(x)))  # exact (erf) GELU, as Hugging Face's "gelu"


class PreNormLayer(nn.Module):
    """ViT layer: h + Attn(LN(h)), then h + MLP(LN(h))."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(hidden, eps=eps)
        self.attn = SelfAttention(hidden, heads)
        self.norm_mlp = nn.LayerNorm(hidden, eps=eps)
        self.mlp = Mlp(hidden, intermediate)

    def forward(self, h: Tensor, cls_only: bool) -> Tensor:
        attended = self.attn(self.norm_attn(h), None, cls_only)
        h = attended + (h[:, :1] if cls_only else h)
        return self.mlp(self.norm_mlp(h)) + h


class PostNormLayer(nn.Module):
    """BERT layer: LN(h + Attn(h)), then LN(a + MLP(a))."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.norm_attn = nn.LayerNorm(hidden, eps=eps)
        self.mlp = Mlp(hidden, intermediate)
        self.norm_mlp = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h: Tensor, mask_add: Tensor, cls_only: bool) -> Tensor:
        attended = self.attn(h, mask_add, cls_only)
        a = self.norm_attn(attended + (h[:, :1] if cls_only else h))
        return self.norm_mlp(self.mlp(a) + a)


class VisionTower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.grid = cfg.image_size // cfg.patch_size
        self.patch_proj = nn.Linear(3 * cfg.patch_size * cfg.patch_size, cfg.hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.position = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, cfg.hidden_size))
        self.layers = nn.ModuleList([PreNormLayer(cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
                                                  cfg.layer_norm_eps) for _ in range(cfg.num_layers)])
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, pixels: Tensor) -> Tensor:
        batch = pixels.shape[0]
        p, g = self.patch_size, self.grid
        # [N,3,g*p,g*p] -> [N, g*g, 3*p*p] in the conv weight's (c, ky, kx) order, patches row-major.
        patches = pixels.reshape(batch, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(batch, g * g, 3 * p * p)
        h = self.patch_proj(patches)
        h = torch.cat([self.cls_token.expand(batch, -1, -1), h], dim=1) + self.position
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, i == last)
        return self.norm(h[:, 0])


class TextTower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        # Only token type 0 is ever used.
        self.token_type0 = nn.Parameter(torch.zeros(cfg.hidden_size))
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList([PostNormLayer(cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
                                                   cfg.layer_norm_eps) for _ in range(cfg.num_layers)])

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        length = input_ids.shape[1]
        h = self.word(input_ids) + self.token_type0 + self.position.weight[:length]
        h = self.norm(h)
        # A finite "minus infinity" for padded keys: exp() of it underflows to exactly 0, as the
        # reference's finfo(float32).min does, and unlike that value it stays finite in bfloat16.
        mask_add = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -1.0e30
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, mask_add, i == last)
        return h[:, 0]


class CloobModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vision = VisionTower(cfg.vision)
        self.text = TextTower(cfg.text)
        self.visual_projection = nn.Linear(cfg.vision.hidden_size, cfg.projection_dim, bias=False)
        self.text_projection = nn.Linear(cfg.text.hidden_size, cfg.projection_dim, bias=False)

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.encode_image(pixel_values)

    @torch.jit.export
    def encode_image(self, pixel_values: Tensor) -> Tensor:
        """float32 [N,3,S,S] normalised pixels -> float32 [N,D] image features."""
        weight = self.visual_projection.weight
        features = self.vision(pixel_values.to(weight.dtype))
        return F.linear(features, weight).float()

    @torch.jit.export
    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """int64 [N,L] ids and mask -> float32 [N,D] text features (positions 0..L-1)."""
        weight = self.text_projection.weight
        features = self.text(input_ids, attention_mask)
        return F.linear(features.to(weight.dtype), weight).float()


def hf_to_module_state(cfg, hf):
    """Maps a checked Hugging Face state dict onto CloobModel's parameter names."""
    v = cfg.vision
    out = {
        "vision.cls_token": hf["vision_model.embeddings.cls_token"],
        "vision.position": hf["vision_model.embeddings.position_embeddings"],
        "vision.patch_proj.weight": hf["vision_model.embeddings.patch_embeddings.projection.weight"]
        .reshape(v.hidden_size, -1),
        "vision.patch_proj.bias": hf["vision_model.embeddings.patch_embeddings.projection.bias"],
        "vision.norm.weight": hf["vision_model.layernorm.weight"],
        "vision.norm.bias": hf["vision_model.layernorm.bias"],
        "text.word.weight": hf["text_model.embeddings.word_embeddings.weight"],
        "text.position.weight": hf["text_model.embeddings.position_embeddings.weight"],
        "text.token_type0": hf["text_model.embeddings.token_type_embeddings.weight"][0],
        "text.norm.weight": hf["text_model.embeddings.LayerNorm.weight"],
        "text.norm.bias": hf["text_model.embeddings.LayerNorm.bias"],
        "visual_projection.weight": hf["visual_projection.weight"],
        "text_projection.weight": hf["text_projection.weight"],
    }

    def fused_qkv(dst, src):
        for part in ("weight", "bias"):
            out[f"{dst}.qkv.{part}"] = torch.cat([hf[f"{src}.{n}.{part}"] for n in ("query", "key", "value")], 0)

    def copy(dst, src):
        for part in ("weight", "bias"):
            out[f"{dst}.{part}"] = hf[f"{src}.{part}"]

    for i in range(v.num_layers):
        src, dst = f"vision_model.encoder.layer.{i}", f"vision.layers.{i}"
        fused_qkv(f"{dst}.attn", f"{src}.attention.attention")
        copy(f"{dst}.attn.out", f"{src}.attention.output.dense")
        copy(f"{dst}.norm_attn", f"{src}.layernorm_before")
        copy(f"{dst}.norm_mlp", f"{src}.layernorm_after")
        copy(f"{dst}.mlp.up", f"{src}.intermediate.dense")
        copy(f"{dst}.mlp.down", f"{src}.output.dense")
    for i in range(cfg.text.num_layers):
        src, dst = f"text_model.encoder.layer.{i}", f"text.layers.{i}"
        fused_qkv(f"{dst}.attn", f"{src}.attention.self")
        copy(f"{dst}.attn.out", f"{src}.attention.output.dense")
        copy(f"{dst}.norm_attn", f"{src}.attention.output.LayerNorm")
        copy(f"{dst}.mlp.up", f"{src}.intermediate.dense")
        copy(f"{dst}.mlp.down", f"{src}.output.dense")
        copy(f"{dst}.norm_mlp", f"{src}.output.LayerNorm")
    return out
