"""Reading a Hugging Face checkpoint directory's weights: pytorch_model.bin or model.safetensors."""
import json
import os
import struct

import torch

from .config import IGNORED_KEYS, expected_shapes


class CheckpointError(ValueError):
    pass


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "F64": torch.float64}


def read_safetensors(path):
    """The safetensors format is a little-endian u64 header length, a JSON header and raw tensor
    bytes; reading it needs no library."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise CheckpointError(f"{path}: truncated safetensors file")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise CheckpointError(f"{path}: safetensors header length {header_len} exceeds the file")
    try:
        header = json.loads(blob[8:8 + header_len])
    except ValueError as e:
        raise CheckpointError(f"{path}: bad safetensors header ({e})") from None
    data = memoryview(blob)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')}")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(data):
            raise CheckpointError(f"{path}: tensor {name} lies outside the file")
        flat = torch.frombuffer(bytearray(data[start:end]), dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def load_state_dict(checkpoint_dir):
    bin_path = os.path.join(checkpoint_dir, "pytorch_model.bin")
    st_path = os.path.join(checkpoint_dir, "model.safetensors")
    if os.path.exists(bin_path):
        try:
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        except TypeError:  # torch without weights_only
            state = torch.load(bin_path, map_location="cpu")
        except Exception as e:
            raise CheckpointError(f"{bin_path}: cannot be read as a PyTorch state dict ({e})") from None
    elif os.path.exists(st_path):
        state = read_safetensors(st_path)
    else:
        raise CheckpointError(f"{checkpoint_dir}: neither pytorch_model.bin nor model.safetensors exists")
    if not isinstance(state, dict):
        raise CheckpointError("the weights file does not hold a state dict")
    return state


def check_state_dict(cfg, state):
    """Every key and shape against the config; names what is missing, unexpected or misshapen."""
    wanted = expected_shapes(cfg)
    missing = sorted(k for k in wanted if k not in state)
    unexpected = sorted(k for k in state if k not in wanted and k not in IGNORED_KEYS)
    wrong = []
    for key, shape in wanted.items():
        if key in state and tuple(state[key].shape) != shape:
            wrong.append(f"{key}: {tuple(state[key].shape)} in the checkpoint, {shape} from config.json")
        elif key in state and not state[key].is_floating_point():
            wrong.append(f"{key}: dtype {state[key].dtype} is not floating point")
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if problems:
        raise CheckpointError("the checkpoint does not match config.json:\n  " + "\n  ".join(problems))
    return {k: state[k].to(torch.float32) for k in wanted}
