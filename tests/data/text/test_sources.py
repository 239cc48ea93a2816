"""Text readers: WikiText filtering rules, plain text, the bundled Wikipedia JSON, chunking, errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from vlkd.data.bundled import bundled_path
from vlkd.data.text.sources import TextSource, has_min_words, is_wikitext_heading, resolve_format
from vlkd.errors import VlkdError

WIKITEXT = (
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game . \n"
    " = = Gameplay = = \n"
    " Too short line here \n"
    " Exactly five words here now \n"
    "\n"
    " = = = Plot = = = \n"
    " An equation = x + y = is not a heading when it does not start with one . \n"
)
KEPT_WIKITEXT = [
    "Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game .",
    "Exactly five words here now",
    "An equation = x + y = is not a heading when it does not start with one .",
]


def write(path, text: str | bytes):
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_wikitext_skips_empty_heading_and_short_lines(tmp_path):
    path = write(tmp_path / "wiki.train.raw", WIKITEXT)
    src = TextSource(path)
    assert src.format == "wikitext" and src.min_words == 5
    assert list(src) == KEPT_WIKITEXT
    assert src.lines_read == 10
    assert src.lines_kept == 3
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert src.bytes_read == path.stat().st_size


def test_wikitext_min_words_override_still_skips_headings(tmp_path):
    path = write(tmp_path / "wiki.valid.tokens", WIKITEXT)
    kept = list(TextSource(path, min_words=0))
    assert "Too short line here" in kept
    assert not any(is_wikitext_heading(t) for t in kept)
    assert len(kept) == 4


def test_heading_and_word_count_helpers():
    assert is_wikitext_heading("= Title =")
    assert is_wikitext_heading("= = = Deep = = =")
    assert not is_wikitext_heading("=x=")
    assert not is_wikitext_heading("a = b =")
    assert has_min_words("a b  c\td e", 5)
    assert not has_min_words("a b c d", 5)
    assert has_min_words("", 0)


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 1, 2, 7])
def test_txt_one_paragraph_per_line_crlf_bom_and_no_final_newline(tmp_path, chunk_bytes):
    path = write(tmp_path / "corpus.txt", b"\xef\xbb\xbfFirst para.\r\n\r\n  Second   one  \r\nHi\r\nlast line")
    src = TextSource(path, chunk_bytes=chunk_bytes)
    assert src.format == "txt" and src.min_words == 0
    assert list(src) == ["First para.", "Second   one", "Hi", "last line"]
    assert (src.lines_read, src.lines_kept) == (5, 4)
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_small_chunks_give_the_same_texts(tmp_path):
    lines = [f"line {i} " + "é" * (i % 7) + " word" * (i % 5) for i in range(300)]
    path = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    whole = TextSource(path)
    small = TextSource(path, chunk_bytes=13)
    chunks = list(small.chunks())
    assert len(chunks) > 50
    assert [t for c in chunks for t in c] == list(whole) == [ln.strip() for ln in lines]
    assert small.sha256 == whole.sha256
    assert (small.lines_read, small.lines_kept) == (whole.lines_read, whole.lines_kept) == (300, 300)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("a.raw", "auto", "wikitext"),
        ("wiki.test.tokens", "auto", "wikitext"),
        ("s.json", "auto", "wiki-json"),
        ("x.txt", "auto", "txt"),
        ("x.md", "auto", "txt"),
        ("x.raw", "txt", "txt"),
    ],
)
def test_resolve_format(name, fmt, expected):
    assert resolve_format(name, fmt) == expected


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(VlkdError, match="unknown text format 'csv'"):
        TextSource(tmp_path / "a.txt", fmt="csv")


def test_wiki_json_dict_and_string_repr_entries(tmp_path):
    entries = {
        "Alpha": {"title": "Alpha", "extract": "Alpha is the first letter.", "description": "d", "topic": "t"},
        "Beta": repr({"title": "Beta", "extract": "Beta's \"quoted\" second.", "description": "", "topic": "x"}),
        "Empty": {"title": "Empty", "extract": "  ", "description": "", "topic": ""},
        "Gamma": {"title": "Gamma", "extract": " Gamma\nspans lines. ", "description": "", "topic": ""},
    }
    path = write(tmp_path / "summaries_en-us.json", json.dumps(entries))
    src = TextSource(path)
    assert src.format == "wiki-json"
    assert list(src) == ["Alpha is the first letter.", "Beta's \"quoted\" second.", "Gamma\nspans lines."]
    assert (src.lines_read, src.lines_kept) == (4, 3)
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundled_wikipedia_reads_all_extracts():
    src = TextSource(bundled_path("wikipedia"))
    texts = list(src)
    assert src.format == "wiki-json"
    assert src.lines_read == 10033
    assert len(texts) == src.lines_kept > 10000
    assert all(isinstance(t, str) and t for t in texts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": {"extract": "x"}', "malformed JSON"),
        ('["x"]', "expected a JSON object"),
        ('{"a": 3}', "entry 'a' is int"),
        ('{"a": "not a dict ("}', "entry 'a' is a string but not a Python dict literal"),
        ('{"a": {"title": "a"}}', "entry 'a' has no string 'extract'"),
    ],
)
def test_wiki_json_errors(tmp_path, content, message):
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(VlkdError, match=message) as err:
        list(TextSource(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 5, 1])
def test_not_utf8_names_offset_and_line(tmp_path, chunk_bytes):
    path = write(tmp_path / "bad.txt", b"hello world\nbad \xff here\nmore\n")
    with pytest.raises(VlkdError, match=r"not UTF-8 text: invalid byte at offset 16 \(line 2\)") as err:
        list(TextSource(path, chunk_bytes=chunk_bytes))
    assert str(err.value).startswith(str(path))


def test_not_utf8_json(tmp_path):
    path = write(tmp_path / "bad.json", b'{"a": "\xfe"}')
    with pytest.raises(VlkdError, match=r"offset 7 \(line 1\)"):
        list(TextSource(path))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VlkdError, match="input file not found") as err:
        list(TextSource(tmp_path / "nope.txt"))
    assert str(tmp_path / "nope.txt") in str(err.value)
    with pytest.raises(VlkdError, match="not a regular file"):
        list(TextSource(tmp_path))


def test_negative_min_words_is_an_error(tmp_path):
    with pytest.raises(VlkdError, match="min_words must be >= 0"):
        TextSource(tmp_path / "a.txt", min_words=-1)


def test_wiki_json_is_handed_out_in_chunks(tmp_path):
    entries = {f"T{i}": {"title": f"T{i}", "extract": f"Entry number {i} text."} for i in range(50)}
    path = write(tmp_path / "s.json", json.dumps(entries))
    chunks = list(TextSource(path, chunk_bytes=60).chunks())
    assert len(chunks) > 10
    assert [t for c in chunks for t in c] == [f"Entry number {i} text." for i in range(50)]


def test_line_longer_than_many_chunks(tmp_path):
    long_line = " ".join(f"w{i}" for i in range(5000))
    path = write(tmp_path / "c.txt", f"short\n{long_line}\nend")
    src = TextSource(path, chunk_bytes=100)
    assert list(src) == ["short", long_line, "end"]
    assert src.bytes_read == path.stat().st_size
