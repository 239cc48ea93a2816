"""`extract-features --appearance clip|siglip|dinov2 --weights DIR`: tiny random towers saved with their image
processors; the written vectors against transformers' model applied to the PIL processor's output."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoImageProcessor, BitImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel,
                          CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model,
                          SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel)

from tests.video.noise import write_noise_video
from vlkd.cli import main
from vlkd.errors import VlkdError
from vlkd.video.backbones import load_backbone
from vlkd.video.decode import FrameSize, iter_frames
from vlkd.video.sampling import clip_indices

TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)
SMALL = ["--motion-size", "16", "--workers", "1", "--device", "cpu"]


def tiny_tower(family: str) -> tuple[torch.nn.Module, object]:
    """A random tower of `family` and its image processor (DINOv2's resizes to 40 and crops 32)."""
    torch.manual_seed(0)
    if family == "clip":
        return (CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY, projection_dim=24)),
                CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    if family == "siglip":
        return SiglipVisionModel(SiglipVisionConfig(**TINY)), SiglipImageProcessor(size={"height": 32, "width": 32})
    return (Dinov2Model(Dinov2Config(**TINY)),
            BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]))


def frame_vectors(family: str, directory: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frame vector the docs name for each group of frames, computed with transformers directly on the
    output of the directory's processor with its PIL backend."""
    processor = AutoImageProcessor.from_pretrained(directory, backend="pil")
    model = {"clip": CLIPVisionModelWithProjection, "siglip": SiglipVisionModel, "dinov2": Dinov2Model}[family]
    model = model.from_pretrained(directory)
    vectors = []
    for group in frames:
        with torch.inference_mode():
            out = model(pixel_values=processor(images=list(group), return_tensors="pt")["pixel_values"])
        vectors.append((out.image_embeds if family == "clip" else
                        out.pooler_output if family == "siglip" else out.last_hidden_state[:, 0]).numpy())
    return vectors


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 1.5-second 64x48 video of random textures (not square: the layouts' crop and stretch matter)."""
    folder = tmp_path_factory.mktemp("tower-videos")
    write_noise_video(folder / "video7.mp4", 64, 48, 36)
    return folder


@pytest.fixture(scope="module", params=["clip", "siglip", "dinov2"])
def tower(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, int]:
    """(family, its saved directory, the width its config gives)."""
    family = request.param
    model, processor = tiny_tower(family)
    directory = tmp_path_factory.mktemp(family)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return family, directory, 24 if family == "clip" else 32


def test_both_layouts_write_the_towers_vectors(tower: tuple[str, Path, int], videos: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    family, directory, width = tower
    args = ["extract-features", "--videos", str(videos), "--appearance", family, "--weights", str(directory), *SMALL]
    assert main([*args, "--layout", "howto100m", "--out", str(tmp_path / "h")]) == 0
    assert main([*args, "--layout", "hcrn", "--num-clips", "1", "--out", str(tmp_path / "c")]) == 0
    side = 40 if family == "dinov2" else 32  # the processor's resize size: the layouts feed it square frames
    app = np.load(tmp_path / "h" / "2d" / "video7.npy")
    assert app.shape == (2, width)  # 1.5 s at 1 frame/s: the frames at 0 s and 1 s
    with h5py.File(tmp_path / "c" / "appearance_feat.h5") as f:
        assert f["resnet_features"].shape == (1, 1, 16, width) and list(f["ids"][()]) == [7]
        clip = f["resnet_features"][0, 0]
    cropped, stretched = (np.stack([f.image for f in iter_frames(videos / "video7.mp4", FrameSize(side, mode))])
                          for mode in ("crop", "stretch"))
    expected = frame_vectors(family, directory, [cropped[[0, 24]], stretched[clip_indices(len(stretched), 1)[0]]])
    assert np.allclose(app, expected[0], atol=1e-5) and np.allclose(clip, expected[1], atol=1e-5)
    meta = json.loads((tmp_path / "h" / "meta.json").read_text())["appearance"]
    assert meta["dim"] == width and meta["normalisation"]["size"] == side
    assert meta["processor"]["image_mean"] == json.loads((directory / "preprocessor_config.json").read_text())[
        "image_mean"]
    capsys.readouterr()
    assert main([*args, "--layout", "howto100m", "--out", str(tmp_path / "h")]) == 0  # the same settings resume
    assert "0 extracted, 1 already done" in capsys.readouterr().out


def test_clip_without_projection_and_a_full_clip_model(tmp_path: Path) -> None:
    """A CLIP tower saved without `visual_projection` (as an older pytorch_model.bin) gives its pooled output;
    a full CLIPModel directory (text tower too, as released) gives the projected image embedding."""
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pixels = processor(images=list(frames.numpy()), return_tensors="pt")["pixel_values"]
    plain = CLIPVisionModel(CLIPVisionConfig(**TINY))
    full = CLIPModel(CLIPConfig(vision_config={**TINY, "projection_dim": 20}, projection_dim=20,
                                text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                                 num_attention_heads=4, vocab_size=99)))
    with torch.inference_mode():
        expected = [plain(pixel_values=pixels).pooler_output, full.get_image_features(pixel_values=pixels)]
    for model, want in zip((plain, full), expected):
        directory = tmp_path / type(model).__name__
        model.save_pretrained(directory)
        processor.save_pretrained(directory)
        if model is plain:
            torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
            (directory / "model.safetensors").unlink()
        backbone = load_backbone("clip", directory)
        with torch.inference_mode():
            got = backbone(frames)
        want = getattr(want, "pooler_output", want)  # get_image_features' return type varies by version
        assert backbone.spec.dim == want.shape[1] and torch.allclose(got, want, atol=1e-5)


def test_bad_directories_are_one_line_errors(tower: tuple[str, Path, int], videos: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    family, directory, _ = tower
    out = tmp_path / "o"
    base = ["extract-features", "--videos", str(videos), "--layout", "howto100m", "--out", str(out),
            "--appearance", family, *SMALL]

    def error(weights: Path | None) -> str:
        assert main([*base, *(["--weights", str(weights)] if weights else [])]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vlkd: error: ") and err.count("\n") == 1
        return err

    def variant(name: str, drop: str = "") -> Path:
        copy = tmp_path / name
        copy.mkdir()
        for f in directory.iterdir():
            if f.name != drop:
                (copy / f.name).write_bytes(f.read_bytes())
        return copy

    assert "needs --weights DIR" in error(None)
    assert "no such directory" in error(tmp_path / "missing")
    assert "no weights" in error(variant("no-weights", "model.safetensors"))
    assert "no image processor (preprocessor_config.json)" in error(variant("no-processor", "preprocessor_config.json"))
    other = "dinov2" if family == "clip" else "clip"
    base[base.index(family)] = other
    assert f"not a {other} model: config.json has model_type" in error(directory)
    base[base.index(other)] = family
    lacking = variant("lacking")
    state = load_file(lacking / "model.safetensors")
    dropped = sorted(state)[0]  # not CLIP's projection, whose absence is a tower without one
    save_file({k: v for k, v in state.items() if k != dropped}, lacking / "model.safetensors",
              metadata={"format": "pt"})
    err = error(lacking)
    assert "weights do not fit" in err and "1 missing" in err and dropped in err
    assert not out.exists()
    wrong_size = variant("wrong-size")
    config = json.loads((wrong_size / "preprocessor_config.json").read_text())
    config["size"] = {"height": 48, "width": 48} if family == "siglip" else {"shortest_edge": 48}
    config["crop_size"] = {"height": 48, "width": 48}
    (wrong_size / "preprocessor_config.json").write_text(json.dumps(config))
    if family == "dinov2":  # interpolates its position embeddings: any size fits
        assert main([*base, "--weights", str(wrong_size)]) == 0
        assert np.load(out / "2d" / "video7.npy").shape == (2, 32)
        return
    assert "the image processor's output does not fit the model" in error(wrong_size)


def test_a_siglip_without_its_pooling_head_is_refused(tmp_path: Path) -> None:
    SiglipVisionModel(SiglipVisionConfig(**TINY, vision_use_head=False)).save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    with pytest.raises(VlkdError, match="SiglipVisionModel has no pooler_output"):
        load_backbone("siglip", tmp_path)
