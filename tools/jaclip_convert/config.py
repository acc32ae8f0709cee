"""Reading and checking the Hugging Face config.json of a CLOOB checkpoint.

Every value the model depends on is read here and checked; anything this converter cannot reproduce
exactly is refused with a message, never guessed.
"""
import json
from dataclasses import dataclass

# Hugging Face's defaults for keys a config.json may leave out (BertConfig / ViTConfig).
BERT_DEFAULTS = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2,
                 "max_position_embeddings": 512, "position_embedding_type": "absolute"}
VIT_DEFAULTS = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16,
                "num_channels": 3, "qkv_bias": True}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TowerConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class VisionConfig(TowerConfig):
    image_size: int
    patch_size: int

    @property
    def num_patches(self):
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class TextConfig(TowerConfig):
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int


@dataclass(frozen=True)
class CloobConfig:
    projection_dim: int
    vision: VisionConfig
    text: TextConfig
    # "cloob" (rinna/japanese-cloob-vit-b-16) or "clip" (rinna/japanese-clip-vit-b-16: the same towers
    # and projections plus a learned logit_scale).
    family: str = "cloob"


def _get(section, name, key, defaults, kind):
    if key in section:
        value = section[key]
    elif key in defaults:
        value = defaults[key]
    else:
        raise ConfigError(f"config.json: {name}.{key} is missing")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(f"config.json: {name}.{key} must be a positive integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ConfigError(f"config.json: {name}.{key} must be a positive number, got {value!r}")
    return value


def _expect(section, name, key, defaults, wanted):
    value = section.get(key, defaults.get(key))
    if value != wanted:
        raise ConfigError(f"config.json: {name}.{key} is {value!r}; this converter reproduces only {wanted!r}")


def _tower(section, name, defaults):
    hidden = _get(section, name, "hidden_size", defaults, int)
    heads = _get(section, name, "num_attention_heads", defaults, int)
    if hidden % heads:
        raise ConfigError(f"config.json: {name}.hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    # "gelu" is the exact erf GELU in Hugging Face; "gelu_new"/"quick_gelu" are other functions.
    _expect(section, name, "hidden_act", defaults, "gelu")
    return dict(hidden_size=hidden, num_layers=_get(section, name, "num_hidden_layers", defaults, int),
                num_heads=heads, intermediate_size=_get(section, name, "intermediate_size", defaults, int),
                layer_norm_eps=float(_get(section, name, "layer_norm_eps", defaults, float)))


def parse_config(raw):
    """Checks a config.json dictionary and returns a CloobConfig."""
    if not isinstance(raw, dict):
        raise ConfigError("config.json is not a JSON object")
    family = raw.get("model_type")
    if family not in ("cloob", "clip"):
        raise ConfigError(f"config.json: model_type is {family!r}, expected 'cloob' or 'clip'")
    text, vision = raw.get("text_config"), raw.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise ConfigError("config.json: text_config and vision_config must both be objects")
    if vision.get("model_type") == "clip_vision_model":
        raise ConfigError("config.json: vision_config is a CLIPVisionConfig (OpenAI CLIP's pre-LayerNorm ViT "
                          "without patch bias), a different network from rinna's ViTModel tower; this "
                          "converter reproduces only vision_config.model_type 'vit'")
    if text.get("model_type") != "bert":
        raise ConfigError(f"config.json: text_config.model_type is {text.get('model_type')!r}, expected 'bert'")
    if vision.get("model_type") != "vit":
        raise ConfigError(f"config.json: vision_config.model_type is {vision.get('model_type')!r}, expected 'vit'")
    _expect(text, "text_config", "position_embedding_type", BERT_DEFAULTS, "absolute")
    _expect(vision, "vision_config", "qkv_bias", VIT_DEFAULTS, True)
    _expect(vision, "vision_config", "num_channels", VIT_DEFAULTS, 3)
    image_size = _get(vision, "vision_config", "image_size", VIT_DEFAULTS, int)
    patch_size = _get(vision, "vision_config", "patch_size", VIT_DEFAULTS, int)
    if image_size % patch_size:
        raise ConfigError(f"config.json: image_size {image_size} is not a multiple of patch_size {patch_size}")
    vision_cfg = VisionConfig(**_tower(vision, "vision_config", VIT_DEFAULTS), image_size=image_size,
                              patch_size=patch_size)
    text_cfg = TextConfig(**_tower(text, "text_config", BERT_DEFAULTS),
                          vocab_size=_get(text, "text_config", "vocab_size", BERT_DEFAULTS, int),
                          max_position_embeddings=_get(text, "text_config", "max_position_embeddings",
                                                       BERT_DEFAULTS, int),
                          type_vocab_size=_get(text, "text_config", "type_vocab_size", BERT_DEFAULTS, int))
    projection_dim = _get(raw, "config", "projection_dim", {}, int)
    return CloobConfig(projection_dim=projection_dim, vision=vision_cfg, text=text_cfg, family=family)


def load_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return parse_config(raw)


def expected_shapes(cfg):
    """Every state-dict key of the Hugging Face layout with its shape."""
    v, t, p = cfg.vision, cfg.text, cfg.projection_dim
    shapes = {
        "vision_model.embeddings.cls_token": (1, 1, v.hidden_size),
        "vision_model.embeddings.position_embeddings": (1, v.num_patches + 1, v.hidden_size),
        "vision_model.embeddings.patch_embeddings.projection.weight": (v.hidden_size, 3, v.patch_size, v.patch_size),
        "vision_model.embeddings.patch_embeddings.projection.bias": (v.hidden_size,),
        "vision_model.layernorm.weight": (v.hidden_size,),
        "vision_model.layernorm.bias": (v.hidden_size,),
        "text_model.embeddings.word_embeddings.weight": (t.vocab_size, t.hidden_size),
        "text_model.embeddings.position_embeddings.weight": (t.max_position_embeddings, t.hidden_size),
        "text_model.embeddings.token_type_embeddings.weight": (t.type_vocab_size, t.hidden_size),
        "text_model.embeddings.LayerNorm.weight": (t.hidden_size,),
        "text_model.embeddings.LayerNorm.bias": (t.hidden_size,),
        "visual_projection.weight": (p, v.hidden_size),
        "text_projection.weight": (p, t.hidden_size),
    }
    if cfg.family == "clip":
        shapes["logit_scale"] = ()

    def linear(prefix, n_out, n_in):
        shapes[prefix + ".weight"] = (n_out, n_in)
        shapes[prefix + ".bias"] = (n_out,)

    def norm(prefix, n):
        shapes[prefix + ".weight"] = (n,)
        shapes[prefix + ".bias"] = (n,)

    for i in range(v.num_layers):
        pre, h = f"vision_model.encoder.layer.{i}", v.hidden_size
        for name in ("query", "key", "value"):
            linear(f"{pre}.attention.attention.{name}", h, h)
        linear(f"{pre}.attention.output.dense", h, h)
        linear(f"{pre}.intermediate.dense", v.intermediate_size, h)
        linear(f"{pre}.output.dense", h, v.intermediate_size)
        norm(f"{pre}.layernorm_before", h)
        norm(f"{pre}.layernorm_after", h)
    for i in range(t.num_layers):
        pre, h = f"text_model.encoder.layer.{i}", t.hidden_size
        for name in ("query", "key", "value"):
            linear(f"{pre}.attention.self.{name}", h, h)
        linear(f"{pre}.attention.output.dense", h, h)
        norm(f"{pre}.attention.output.LayerNorm", h)
        linear(f"{pre}.intermediate.dense", t.intermediate_size, h)
        linear(f"{pre}.output.dense", h, t.intermediate_size)
        norm(f"{pre}.output.LayerNorm", h)
    return shapes


# Buffers some checkpoints carry that hold no weights.
IGNORED_KEYS = {"text_model.embeddings.position_ids": (1, None)}
