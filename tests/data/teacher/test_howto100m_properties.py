"""Property test of the caption.json reader: random, malformed input either parses into valid segments or
raises VlkdError, never another exception (issue 15, point 8)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.data.json_strategies import JSON, SCALARS, SETTINGS, json_bytes
from vlkd.data.teacher.howto100m import Segment, read_captions
from vlkd.errors import VlkdError

SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.0, 0, 1e308, 10**400, True])
NUMBERS = st.one_of(SPECIAL, st.floats(min_value=0, max_value=1e6), st.floats(), st.integers(-5, 10**20), SCALARS)
TIMES = st.one_of(SPECIAL, st.floats(min_value=0, max_value=1e6), st.integers(0, 100))
SEGMENTS = st.lists(st.tuples(TIMES, TIMES, st.text(max_size=8)), min_size=1, max_size=3).map(
    lambda segs: {"start": [s for s, _, _ in segs], "end": [e for _, e, _ in segs], "text": [t for _, _, t in segs]})
ENTRY = st.one_of(
    SEGMENTS, SEGMENTS,  # well-formed lists of equal length, any values
    st.fixed_dictionaries({"start": st.lists(NUMBERS, max_size=4), "end": st.lists(NUMBERS, max_size=4),
                           "text": st.lists(st.one_of(st.text(max_size=8), SCALARS), max_size=4)}),
    JSON,
)
CAPTIONS = st.one_of(st.dictionaries(st.text(max_size=6), ENTRY, min_size=1, max_size=4), JSON)


@SETTINGS
@given(raw=json_bytes(CAPTIONS))
def test_captions_parse_to_valid_segments_or_vlkd_error(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "caption.json"
    path.write_bytes(raw)
    try:
        captions = read_captions(path)
    except VlkdError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    for vid, segments in captions.items():
        assert isinstance(vid, str)
        for seg in segments:
            assert isinstance(seg, Segment) and isinstance(seg.text, str)
            assert math.isfinite(seg.start) and math.isfinite(seg.end) and 0 <= seg.start <= seg.end


@pytest.mark.parametrize("raw", [b'{"v": {"start": [1e400], "end": [1e400], "text": ["a"]}}',
                                 b'{"v": {"start": [0], "end": [10' + b"0" * 400 + b'], "text": ["a"]}}',
                                 b"[" * 100000])
def test_extreme_numbers_and_nesting(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "caption.json"
    path.write_bytes(raw)
    with pytest.raises(VlkdError):
        read_captions(path)
