"""Hypothesis strategies shared by the property tests of vlkd's JSON readers: any JSON value (NaN and
infinities included, as Python's json writes them), and bytes near a valid document (truncated, spliced,
not UTF-8)."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Modest by default (CI); a longer search: VLKD_HYPOTHESIS_EXAMPLES=5000 pytest tests/data -k properties
SETTINGS = settings(max_examples=int(os.environ.get("VLKD_HYPOTHESIS_EXAMPLES", "100")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

SPECIAL_NUMBERS = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, 0, 1e308, 10**400])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), SPECIAL_NUMBERS,
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=12)


def damaged(document: Any) -> st.SearchStrategy[bytes]:
    """The document's JSON bytes, whole, truncated, with bytes spliced in, or re-encoded as latin-1."""
    text = json.dumps(document)
    raw = text.encode("utf-8")
    return st.one_of(
        st.just(raw), st.just(raw), st.just(raw),  # mostly whole: the values are what is tested
        st.integers(0, max(len(raw) - 1, 0)).map(lambda n: raw[:n]),
        st.tuples(st.integers(0, len(raw)), st.binary(min_size=1, max_size=4)).map(
            lambda cut: raw[:cut[0]] + cut[1] + raw[cut[0]:]),
        st.just(text.encode("latin-1", "replace") + b"\xe9"),
    )


def json_bytes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes of a JSON document drawn from `values`, possibly damaged."""
    return values.flatmap(damaged)
