"""Vision towers of transformers (CLIP, SigLIP, DINOv2) as frame feature extractors.

A tower comes from a local `save_pretrained` directory only (`local_files_only`: nothing is downloaded),
with the image processor saved beside it (`preprocessor_config.json`, or a processor's
`processor_config.json`): uint8 RGB frames go through that processor (its resize, centre crop, rescale and
normalisation, on the frames' device) and then the model. transformers (a second or more of start-up) is
imported only when a tower is loaded, so the other backbones' extractions start without it.

The frame vector is
- CLIP: the projected image embedding (`image_embeds`, not L2-normalised) when the checkpoint has
  `visual_projection`, else the pooled output (the CLS token after the post-layer norm);
- SigLIP: the pooled output (the attention-pooling head);
- DINOv2: the CLS token of the last hidden state (after the final layer norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.io import check_safetensors_dir, read_json

PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


@dataclass(frozen=True)
class Family:
    """One kind of vision tower: which checkpoints are of it and which output is the frame vector."""

    name: str
    model_types: tuple[str, ...]  # config.json `model_type` values of the family (full model or tower alone)
    model: str  # the transformers class loaded
    vector: str  # an output field, or "cls": the last hidden state's first token
    plain: str = ""  # CLIP: the class loaded instead when the checkpoint has no projection
    plain_vector: str = ""


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("clip", ("clip", "clip_vision_model"), "CLIPVisionModelWithProjection", "image_embeds",
           plain="CLIPVisionModel", plain_vector="pooler_output"),
    Family("siglip", ("siglip", "siglip_vision_model"), "SiglipVisionModel", "pooler_output"),
    Family("dinov2", ("dinov2",), "Dinov2Model", "cls"),
]}


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def _check_directory(family: Family, directory: Path) -> None:
    """A one-line error for a directory that is missing, not of `family`, or has no weights."""
    if not directory.is_dir():
        raise VlkdError(f"--weights for {family.name}: no such directory (a local transformers "
                        "save_pretrained directory)", directory)
    if not (directory / "config.json").is_file():
        raise VlkdError(f"--weights for {family.name}: no config.json (not a transformers model directory)",
                        directory)
    config = read_json(directory / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in family.model_types:
        raise VlkdError(f"not a {family.name} model: config.json has model_type {model_type!r} (expected "
                        f"{' or '.join(family.model_types)})", directory)
    if not any(any(directory.glob(pattern)) for pattern in WEIGHT_FILES):
        raise VlkdError(f"no weights in the {family.name} model directory (model.safetensors or "
                        "pytorch_model.bin)", directory)
    check_safetensors_dir(directory)


def _from_pretrained(class_name: str, directory: Path) -> tuple[nn.Module, set[str]]:
    """The transformers model and the names of the tensors the checkpoint lacks."""
    import transformers  # only when used: see the module's docstring

    with quiet_transformers():
        model, info = getattr(transformers, class_name).from_pretrained(
            directory, local_files_only=True, output_loading_info=True)
    return model, set(info["missing_keys"])


def load_model(family: Family, directory: Path) -> tuple[nn.Module, str]:
    """The family's model from `directory` and its frame-vector output; every tensor must come from the
    checkpoint (extra ones, such as a CLIP text tower, are ignored)."""
    _check_directory(family, directory)
    try:
        model, missing = _from_pretrained(family.model, directory)
        vector = family.vector
        if family.plain and missing == {"visual_projection.weight"}:  # a CLIP vision tower without projection
            (model, missing), vector = _from_pretrained(family.plain, directory), family.plain_vector
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # mismatched shapes are a RuntimeError
        raise VlkdError(f"cannot load the {family.name} model ({_first_line(e)})", directory) from None
    if missing:
        raise VlkdError(f"weights do not fit {type(model).__name__}: {len(missing)} missing tensors "
                        f"(e.g. {sorted(missing)[0]!r})", directory)
    return model.eval(), vector


def load_processor(directory: Path) -> Any:
    """transformers' image processor saved in `directory` (torchvision backend: it runs on the frames'
    device)."""
    if not any((directory / name).is_file() for name in PROCESSOR_FILES):
        raise VlkdError("no image processor (preprocessor_config.json) in the model directory: save it there "
                        "with AutoImageProcessor.from_pretrained(NAME).save_pretrained(DIR)", directory)
    from transformers import AutoImageProcessor  # only when used: see the module's docstring

    try:
        with quiet_transformers():
            return AutoImageProcessor.from_pretrained(directory, local_files_only=True, backend="torchvision")
    except (OSError, ValueError, KeyError) as e:
        raise VlkdError(f"cannot load the image processor ({_first_line(e)})", directory) from None


class VisionTower(nn.Module):
    """uint8 RGB frames (B, H, W, 3) in, one vector per frame out, through the directory's processor and
    model. `size` is the side of the square frames to feed (the processor's resize size), `dim` the width."""

    def __init__(self, family: Family, directory: str | Path) -> None:
        super().__init__()
        directory = Path(directory)
        self.model, self.vector = load_model(family, directory)
        self.processor = load_processor(directory)
        self.config = self.processor.to_dict()
        size = self.config.get("size") or {}
        self.size = int(size.get("shortest_edge") or max(size.get("height", 0), size.get("width", 0)))
        if self.size < 1:
            raise VlkdError(f"image processor: no input size in {size!r}", directory)
        try:  # one black frame: a processor whose output the model cannot take fails here, before any output
            with torch.inference_mode():
                vectors = self(torch.zeros(1, self.size, self.size, 3, dtype=torch.uint8))
        except (ValueError, RuntimeError) as e:
            raise VlkdError(f"the image processor's output does not fit the model ({_first_line(e)})",
                            directory) from None
        if vectors is None:  # SigLIP with vision_use_head false
            raise VlkdError(f"{type(self.model).__name__} has no {self.vector} (its config turns the pooling head "
                            "off)", directory)
        self.dim = vectors.shape[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        inputs = self.processor(images=pixels.permute(0, 3, 1, 2), return_tensors="pt", device=pixels.device)
        out = self.model(pixel_values=inputs["pixel_values"].to(pixels.device))
        return out.last_hidden_state[:, 0] if self.vector == "cls" else getattr(out, self.vector)

    def describe(self) -> dict:
        """What decides the vectors besides the weights (meta.json): class, output, processor settings."""
        return {"model": type(self.model).__name__, "vector": self.vector, "processor": self.config}
