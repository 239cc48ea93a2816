"""vlkd.data.mapped: meta.json's common check, the size check, the lazy read-only map and pickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from vlkd.data.mapped import MappedArrays, read_meta
from vlkd.errors import VlkdError


def test_arrays_are_the_file_bytes_opened_once_and_pickled_without_the_map(tmp_path: Path) -> None:
    data = np.arange(12, dtype="<i4").reshape(3, 4)
    (tmp_path / "a.bin").write_bytes(data.tobytes())
    (tmp_path / "empty.bin").write_bytes(b"")
    arrays = MappedArrays(tmp_path, {"a.bin": ("<i4", (3, 4)), "empty.bin": ("<f2", (0, 5))}, "rebuild it")
    assert arrays._maps == {}  # nothing mapped until used
    np.testing.assert_array_equal(arrays["a.bin"], data)
    assert arrays["a.bin"] is arrays["a.bin"] and isinstance(arrays["a.bin"], np.memmap)
    assert not arrays["a.bin"].flags.writeable
    assert arrays["empty.bin"].shape == (0, 5)
    clone = pickle.loads(pickle.dumps(arrays))
    assert clone._maps == {}
    np.testing.assert_array_equal(clone["a.bin"], data)


@pytest.mark.parametrize("content, problem", [(None, "file not found; rebuild it"),
                                              (b"\0" * 47, "size 47 bytes does not match meta.json (3 x 4 x 4 "
                                                           "bytes = 48); rebuild it")], ids=["missing", "wrong-size"])
def test_a_missing_or_wrong_sized_file_is_named(tmp_path: Path, content: bytes | None, problem: str) -> None:
    if content is not None:
        (tmp_path / "a.bin").write_bytes(content)
    with pytest.raises(VlkdError) as error:
        MappedArrays(tmp_path, {"a.bin": ("<i4", (3, 4))}, "rebuild it")
    assert (error.value.problem, error.value.path) == (problem, str(tmp_path / "a.bin"))


@pytest.mark.parametrize("meta, problem", [([1], "malformed thing metadata: not a JSON object"),
                                           ({"format_version": 2}, "unsupported thing format_version 2 (expected 1)")],
                         ids=["not-an-object", "other-version"])
def test_read_meta_refuses_another_format(tmp_path: Path, meta: object, problem: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(VlkdError) as error:
        read_meta(path, "thing", 1)
    assert (error.value.problem, error.value.path) == (problem, str(path))
    path.write_text(json.dumps({"format_version": 1, "n": 3}))
    assert read_meta(path, "thing", 1) == {"format_version": 1, "n": 3}
