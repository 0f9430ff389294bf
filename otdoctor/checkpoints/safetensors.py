"""Reading a safetensors file's header without loading tensors, and naming the architecture.

Layout: 8-byte little-endian header length N, N bytes of JSON (`dtype`, `shape`, `data_offsets`,
optional `__metadata__`), then the data. The file is complete when the largest `data_offsets` end
plus 8 plus N equals the file size; the rules a header must follow live in `header_rules`.
"""

from __future__ import annotations

import struct
from collections.abc import KeysView, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from otdoctor.checkpoints.header_rules import MAX_HEADER_BYTES, HeaderError, InvalidHeader, parse_json, validate

__all__ = ["MAX_HEADER_BYTES", "Header", "HeaderError", "InvalidHeader", "read_header", "sniff"]


@dataclass(frozen=True)
class Header:
    path: Path
    file_bytes: int
    header_bytes: int
    tensors: Mapping[str, Mapping[str, Any]]
    metadata: Mapping[str, str] = field(default_factory=dict)
    data_bytes_expected: int = 0  # where the last tensor ends: the data region's length

    @property
    def expected_file_bytes(self) -> int:
        return 8 + self.header_bytes + self.data_bytes_expected

    @property
    def missing_bytes(self) -> int:
        """> 0 for a truncated file, < 0 for trailing junk."""
        return self.expected_file_bytes - self.file_bytes

    @property
    def complete(self) -> bool:
        return self.missing_bytes == 0


def sniff(head: bytes) -> str | None:
    """Name what a file that is not safetensors actually is, from its first bytes."""
    text = head.lstrip()[:200].lower()
    if text.startswith(b"version https://git-lfs"):
        return "a git-lfs pointer (the repository was cloned without git-lfs)"
    if text.startswith(b"<!doctype html") or text.startswith(b"<html") or b"<html" in text[:100]:
        return "an HTML page (a login or error page was saved instead of the model)"
    if text.startswith(b"{") and (b'"error' in text or b'"message' in text or b'"detail' in text):
        return "a JSON error message from the server"
    if head[:2] == b"PK":
        return "a zip archive (a PyTorch .ckpt pickle, not safetensors)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # PROTO 2-5
        return "a Python pickle (.ckpt/.pt), not safetensors"
    if not head:
        return "an empty file"
    return None


def _header_length(fh: BinaryIO, size: int) -> tuple[bytes, int]:
    """(the first 8 bytes, the header length N they give); HeaderError when N cannot be right."""
    head = fh.read(8)
    if len(head) < 8:
        what = sniff(head) or f"a {size}-byte file"
        raise HeaderError(f"not a safetensors file: {what}")
    (n,) = struct.unpack("<Q", head)
    if n == 0 or n > MAX_HEADER_BYTES or n > size - 8:
        fh.seek(0)
        named = sniff(fh.read(512))
        if named:
            raise HeaderError(f"not a safetensors file: {named}")
        if n <= MAX_HEADER_BYTES and n > size - 8:
            raise HeaderError(f"truncated inside the header: {n + 8 - size} bytes of the header are missing")
        raise HeaderError("not a safetensors file: the header length is implausible")
    return head, n


def read_header(path: Path) -> Header:
    """Parse and validate the header: HeaderError naming what the file is when it is not safetensors,
    InvalidHeader naming the broken rule when it is a damaged one."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head, n = _header_length(fh, size)
        raw = fh.read(n)
    try:
        obj = parse_json(raw)
    except InvalidHeader:
        raise
    except RecursionError:  # parse_json bounds the depth first; this is the last line of defence
        raise InvalidHeader("the JSON nests too deeply to parse") from None
    except (ValueError, UnicodeDecodeError):
        what = sniff(head + raw[:504])
        raise HeaderError(f"not a safetensors file: {what or 'the header is not JSON'}") from None
    if not isinstance(obj, dict):
        raise HeaderError("not a safetensors file: the header is not a JSON object")
    tensors, metadata, data_bytes = validate(obj)
    return Header(path, size, n, {name: obj[name] for name in tensors}, metadata, data_bytes)


# Architecture -----------------------------------------------------------------------------------
SDXL = "SDXL"
SD15 = "SD 1.5"
SD2 = "SD 2.x"
LORA = "LoRA"
EMBEDDING = "embedding"
UNKNOWN = "unknown"

# OneTrainer model_type values per architecture.
MODEL_TYPES = {
    SDXL: ("STABLE_DIFFUSION_XL_10_BASE", "STABLE_DIFFUSION_XL_10_BASE_INPAINTING"),
    SD15: ("STABLE_DIFFUSION_15", "STABLE_DIFFUSION_15_INPAINTING"),
    SD2: (
        "STABLE_DIFFUSION_20",
        "STABLE_DIFFUSION_20_BASE",
        "STABLE_DIFFUSION_20_INPAINTING",
        "STABLE_DIFFUSION_20_DEPTH",
        "STABLE_DIFFUSION_21",
        "STABLE_DIFFUSION_21_BASE",
    ),
}


def architecture_of_model_type(model_type: str) -> str | None:
    for arch, types in MODEL_TYPES.items():
        if model_type in types:
            return arch
    return None


def _cross_attention_width(tensors: Mapping[str, Mapping[str, Any]]) -> int | None:
    for key, t in tensors.items():
        if key.endswith("attn2.to_k.weight") and len(t.get("shape", ())) == 2:
            return int(t["shape"][1])
    return None


_LORA_MARKERS = (
    ".lora_down.",
    ".lora_up.",
    ".lora_A.",
    ".lora_B.",
    ".lora.down.",
    ".lora.up.",
    "_lora.down.",
    "_lora.up.",
    ".hada_w1_a",
    ".lokr_w1",
)


def _is_lora_key(key: str) -> bool:
    """kohya (`lora_unet_...lora_down`), PEFT (`lora_A`), old diffusers (`to_q_lora.down`), LyCORIS."""
    return key.startswith("lora_") or any(m in key for m in _LORA_MARKERS)


def _is_embedding(keys: KeysView[str]) -> bool:
    return bool(keys) and all(
        k in ("emb_params", "string_to_param", "clip_l", "clip_g", "*") or k.startswith("string_to_param") for k in keys
    )


def _stable_diffusion(tensors: Mapping[str, Mapping[str, Any]]) -> str:
    """SDXL, SD 2.x or SD 1.5 from the text encoder's key prefix, else the cross-attention width."""
    keys = tensors.keys()
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return SDXL
    width = _cross_attention_width(tensors)
    if any(k.startswith("cond_stage_model.model.") for k in keys) or width == 1024:
        return SD2
    if any(k.startswith("cond_stage_model.transformer.") for k in keys) or width == 768:
        return SD15
    return SDXL if width == 2048 else UNKNOWN


def detect_architecture(tensors: Mapping[str, Mapping[str, Any]]) -> str:
    """SDXL, SD 1.5, SD 2.x, LoRA or embedding, from tensor names and shapes."""
    keys = tensors.keys()
    if any(_is_lora_key(k) for k in keys):
        return LORA
    if _is_embedding(keys):
        return EMBEDDING
    return _stable_diffusion(tensors)
