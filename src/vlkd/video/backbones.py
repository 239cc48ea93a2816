"""Feature backbones: 2D ImageNet CNNs and 3D video CNNs from torchvision, the Kinetics 3D ResNeXt-101,
the weight-free optical-flow motion extractor, and the vision towers of transformers (CLIP, SigLIP,
DINOv2: `towers.py`). Each records its input size and normalisation.

Weights never come from the network: a local file (`weights=PATH`), else torchvision's cache
(`$TORCH_HOME/hub/checkpoints/<file>`) when the file is there, else the bundled MobileNetV2 for
`mobilenet_v2`; `weights="random"` (tests, benchmarks) skips loading. A vision tower needs `weights=DIR`,
its local model directory, which also decides its width, input size and normalisation (its image processor).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from vlkd.data.bundled import bundled_path
from vlkd.errors import VlkdError
from vlkd.models.resnext3d import FEATURE_DIM, KINETICS_MEAN_255, resnext101_3d
from vlkd.video.flow import FLOW_DIM, flow_features
from vlkd.video.towers import FAMILIES, VisionTower

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))


@dataclass(frozen=True)
class Spec:
    """How to build a backbone and feed it."""

    name: str
    kind: str  # "2d": frames (B, H, W, 3) -> (B, D); "3d": clips (B, T, H, W, 3) -> (B, D)
    dim: int
    size: int  # input frames are size x size
    mean: tuple[float, ...]  # applied after scaling pixels by `scale`
    std: tuple[float, ...]
    scale: float = 1 / 255  # pixel multiplier before mean/std (1.0 for 0-255 inputs)
    build: Callable[[], nn.Module] | None = None  # the full classifier, as its weights expect
    cache_file: str = ""  # file name in torchvision's cache
    head: str = ""  # attribute replaced by Identity to expose pooled features
    needs_weights: bool = True
    tower: bool = False  # a transformers vision tower (FAMILIES): dim, size and normalisation come from its DIR
    notes: str = field(default="", compare=False)

    def normalisation(self) -> dict:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std), "size": self.size}


def _tv(name: str, weights_enum: str) -> tuple[Callable[[], nn.Module], str]:
    builder = getattr(torchvision.models if not name.startswith(("r3d", "r2plus", "mc3", "s3d"))
                      else torchvision.models.video, name)
    enum = getattr(torchvision.models if not name.startswith(("r3d", "r2plus", "mc3", "s3d"))
                   else torchvision.models.video, weights_enum)
    return (lambda: builder(weights=None)), enum.DEFAULT.url.rsplit("/", 1)[-1]


def _spec_2d(name: str, enum: str, dim: int, head: str) -> Spec:
    build, cache = _tv(name, enum)
    return Spec(name, "2d", dim, 224, *IMAGENET, build=build, cache_file=cache, head=head)


def _spec_3d(name: str, enum: str, dim: int, size: int, head: str) -> Spec:
    build, cache = _tv(name, enum)
    return Spec(name, "3d", dim, size, *KINETICS, build=build, cache_file=cache, head=head)


SPECS: dict[str, Spec] = {s.name: s for s in [
    _spec_2d("resnet152", "ResNet152_Weights", 2048, "fc"),
    _spec_2d("resnet101", "ResNet101_Weights", 2048, "fc"),
    _spec_2d("resnet50", "ResNet50_Weights", 2048, "fc"),
    _spec_2d("resnext101_32x8d", "ResNeXt101_32X8D_Weights", 2048, "fc"),
    _spec_2d("mobilenet_v2", "MobileNet_V2_Weights", 1280, "classifier"),
    _spec_3d("r3d_18", "R3D_18_Weights", 512, 112, "fc"),
    _spec_3d("r2plus1d_18", "R2Plus1D_18_Weights", 512, 112, "fc"),
    _spec_3d("mc3_18", "MC3_18_Weights", 512, 112, "fc"),
    _spec_3d("s3d", "S3D_Weights", 1024, 224, "classifier"),
    Spec("resnext101", "3d", FEATURE_DIM, 112, KINETICS_MEAN_255, (1.0, 1.0, 1.0), scale=1.0,
         build=resnext101_3d, cache_file="resnext-101-kinetics.pth", head="fc"),
    Spec("flow", "3d", FLOW_DIM, 112, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), needs_weights=False,
         notes="Lucas-Kanade optical-flow statistics, no weights"),
    *[Spec(f.name, "2d", 0, 0, (), (), tower=True,
           notes=f"transformers {f.model} and its image processor, frame vector {f.vector}")
      for f in FAMILIES.values()],
]}


def get_spec(name: str) -> Spec:
    if name not in SPECS:
        raise VlkdError(f"unknown backbone {name!r} (known: {', '.join(SPECS)})")
    return SPECS[name]


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise VlkdError("weights file not found", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise VlkdError(f"not a PyTorch checkpoint ({type(e).__name__})", path) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VlkdError("checkpoint holds no state dict of tensors", path)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_strict(model: nn.Module, path: Path, name: str) -> None:
    """Load every parameter and buffer or fail with one line naming the first mismatches."""
    state = _state_dict(path)
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # absent in old checkpoints
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        example = (missing or unexpected or shapes)[0]
        raise VlkdError(f"weights do not fit {name}: {len(missing)} missing, {len(unexpected)} unexpected, "
                        f"{len(shapes)} wrongly shaped tensors (e.g. {example!r})", path)
    model.load_state_dict(state, strict=False)


def resolve_weights(spec: Spec, weights: str | os.PathLike | None) -> Path | None:
    """The weights file to load for `spec` (None: random init, only when asked or not needed)."""
    if spec.tower and (not weights or weights == "random"):
        raise VlkdError(f"{spec.name} needs --weights DIR: a local transformers model directory with its image "
                        "processor (nothing is downloaded)")
    if not spec.needs_weights or weights == "random":
        return None
    if weights:
        return Path(weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.cache_file
    if cached.is_file():
        return cached
    if spec.name == "mobilenet_v2":
            return bundled_path("mobilenet_v2")
    raise VlkdError(f"no weights for {spec.name}: pass a local file with --weights (torchvision's cache has no "
                    f"{spec.cache_file}; nothing is downloaded)")


class FeatureModel(nn.Module):
    """uint8 frames or clips in, pooled features out: normalisation inside, classifier head removed. For a
    vision tower, `spec` is completed from its directory (width, frame size, the processor's mean/std)."""

    def __init__(self, spec: Spec, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.weights = resolve_weights(spec, weights)
        self.net: nn.Module | None = None
        if spec.tower:
            tower = VisionTower(FAMILIES[spec.name], self.weights)  # type: ignore[arg-type]
            processor = tower.config
            spec = replace(spec, dim=tower.dim, size=tower.size, mean=tuple(processor.get("image_mean") or ()),
                           std=tuple(processor.get("image_std") or ()), scale=processor.get("rescale_factor") or 1.0)
            self.net = tower
        self.spec = spec
        if spec.build is not None:
            net = spec.build()
            if self.weights is not None:
                load_strict(net, self.weights, spec.name)
            setattr(net, spec.head, nn.Identity())
            if spec.name == "resnext101":
                net.forward = net.features  # type: ignore[method-assign]
            if spec.kind == "2d":  # oneDNN's fast path on CPU (about 1.8x for MobileNetV2 there)
                net = net.to(memory_format=torch.channels_last)
            self.net = net.eval()
        if not spec.tower:
            self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def describe(self) -> dict:
        """meta.json's extra record of a vision tower (class, output, processor); empty for the others."""
        return self.net.describe() if isinstance(self.net, VisionTower) else {}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.net is None:  # flow: works on raw clips
            return flow_features(pixels)
        if isinstance(self.net, VisionTower):  # its processor normalises
            return self.net(pixels)
        x = pixels.float() * self.spec.scale
        if self.spec.kind == "2d":  # (B, H, W, 3)
            x = ((x.permute(0, 3, 1, 2) - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        else:  # (B, T, H, W, 3) -> (B, 3, T, H, W)
            x = (x.permute(0, 4, 1, 2, 3) - self.mean[..., None]) / self.std[..., None]
        return self.net(x).flatten(1)


def load_backbone(name: str, weights: str | os.PathLike | None = None, device: str = "cpu") -> FeatureModel:
    return FeatureModel(get_spec(name), weights).to(device).eval()
