"""Property tests of the text sources: random bytes in every format either give clean texts (the same ones
whatever the read chunk size) or raise VlkdError, never another exception (issue 15, point 8)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.data.json_strategies import JSON, SETTINGS, json_bytes
from vlkd.data.text.sources import TextSource
from vlkd.errors import VlkdError

PIECES = st.sampled_from([b"\n", b"\r\n", b" ", b"= Title =", b" = = Section = = ", b"\xef\xbb\xbf", b"caf\xc3\xa9",
                          b"\xe9", b"\xff", b"word", b"two words here", b"\t", b"\x00", b"\xe2\x80\xa8"])
RAW = st.one_of(st.lists(PIECES, max_size=12).map(b"".join), st.binary(max_size=60))


def read(path: Path, fmt: str, chunk_bytes: int) -> list[str] | str:
    """The texts, or the error's message."""
    try:
        return list(TextSource(path, fmt, chunk_bytes=chunk_bytes))
    except VlkdError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return f"error: {e}"


@SETTINGS
@given(raw=RAW, fmt=st.sampled_from(["txt", "wikitext"]), chunk=st.integers(1, 16), min_words=st.integers(0, 3))
def test_line_formats_give_clean_texts_independent_of_chunking(raw: bytes, fmt: str, chunk: int, min_words: int,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    whole = read(path, fmt, 1 << 20)
    assert read(path, fmt, chunk) == whole
    if isinstance(whole, list):
        assert all(text and text == text.strip() for text in whole)
        if fmt == "wikitext":
            assert not any(text.startswith("= ") and text.endswith(" =") for text in whole)


WIKI = st.one_of(st.dictionaries(st.text(max_size=5), st.one_of(
    st.fixed_dictionaries({"extract": st.one_of(st.text(max_size=20), JSON)}),
    st.sampled_from(["{'extract': 'a b c'}", "{'extract': 1}", "{'extract'", "[1, 2]", "1e999"]),
    JSON), max_size=4), JSON)


@SETTINGS
@given(raw=json_bytes(WIKI))
def test_wiki_json_gives_texts_or_vlkd_error(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "wiki.json"
    path.write_bytes(raw)
    texts = read(path, "wiki-json", 1 << 20)
    if isinstance(texts, list):
        assert all(isinstance(t, str) and t and t == t.strip() for t in texts)
