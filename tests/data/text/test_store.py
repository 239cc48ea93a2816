"""Token store: exact blocks against a non-streaming reference, determinism, metadata, read side, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from vlkd.data.bundled import bundled_path
from vlkd.data.text.sources import TextSource
from vlkd.data.text.store import TokenStore, build_token_store, fast_encoder
from vlkd.data.tokenizer import load_tokenizer, vocab_fingerprint
from vlkd.errors import VlkdError

TOK = "bundled:minilm"
BS = 126


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TOK)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    """Real prose (the first bundled Wikipedia extracts) plus tricky lines: a very long line, accents, CJK."""
    texts = list(itertools.islice(TextSource(bundled_path("wikipedia")), 120))
    texts = [" ".join(t.split()) for t in texts]  # one paragraph per line
    texts += [
        " ".join(texts[:8]),  # far longer than 512 tokens
        "Ça coûte 3,50 € — naïve café, Ünïcödé!",
        "東京 is in 日本; emoji 🙂 and tabs\there.",
    ]
    return texts


def reference_blocks(tok, texts: list[str], block_size: int) -> tuple[np.ndarray, int]:
    """Non-streaming reference: tokenize everything at once, concatenate, cut into full blocks."""
    ids = [i for row in tok(texts, add_special_tokens=False)["input_ids"] for i in row]
    n = len(ids) // block_size * block_size
    return np.array(ids[:n], dtype=np.int64).reshape(-1, block_size), len(ids)


def write_lines(path, texts: list[str]):
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def read_blocks(out, meta) -> np.ndarray:
    return np.fromfile(out / "blocks.bin", dtype="<" + ("u2" if meta["dtype"] == "uint16" else "u4")).reshape(
        -1, meta["block_size"]
    )


TRICKY = [
    "Plain ASCII Sentence, With CAPS and punctuation!? (1,234.5%)",
    "tab\tseparated\tASCII",
    "vertical\x0btab",
    "form\x0cfeed",
    "unit\x1fseparator",
    "nul\x00here",
    "\x7fdel",
    "literal [MASK] and [CLS] tokens, [unused0], [UNK]",
    "Ça coûte 3,50 € — naïve café",
    "ÀÉÎ ÕÜ UPPERCASE accents",
    "東京 is in 日本; emoji 🙂",
    "multi\nline\r\ntext",
    "\u00a0non-breaking\u2003spaces\u200bzero-width\ufffdreplacement",
    "   ",
    "",
]


def test_fast_encoder_matches_plain_tokenizer_call(tok, paragraphs):
    texts = [t for pair in itertools.zip_longest(TRICKY, paragraphs, fillvalue="x") for t in pair]
    expected = tok(texts, add_special_tokens=False)["input_ids"]
    encode = fast_encoder(tok)
    assert encode(texts) == expected
    assert encode(TRICKY[:2]) == expected[0:4:2]  # all printable ASCII
    assert encode(TRICKY[8:11]) == expected[16:22:2]  # none printable ASCII
    assert max(map(len, expected)) > 512  # truncation (128 in tokenizer.json) must be off
    # the caller's tokenizer is not changed by building an encoder
    assert tok(paragraphs[-3], add_special_tokens=False)["input_ids"] == tok(
        [paragraphs[-3]], add_special_tokens=False
    )["input_ids"][0]


def test_fast_encoder_on_raw_wikipedia_extracts(tok):
    texts = [
        entry["extract"]
        for entry in itertools.islice(json.loads(bundled_path("wikipedia").read_text("utf-8")).values(), 2500)
    ]
    assert fast_encoder(tok)(texts) == tok(texts, add_special_tokens=False)["input_ids"]


def test_fast_encoder_with_a_cased_bert_normalizer(tok, paragraphs):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tok.backend_tokenizer.to_str())
    spec["normalizer"].update(lowercase=False, strip_accents=True)
    cased = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)))
    texts = TRICKY + paragraphs[:20]
    expected = cased(texts, add_special_tokens=False)["input_ids"]
    assert fast_encoder(cased)(texts) == expected
    assert expected != tok(texts, add_special_tokens=False)["input_ids"]


def test_blocks_equal_non_streaming_reference(tmp_path, tok, paragraphs):
    src = write_lines(tmp_path / "corpus.txt", paragraphs)
    meta = build_token_store([src], TOK, tmp_path / "store", progress=False)
    ref, total = reference_blocks(tok, paragraphs, BS)
    # tokenizing the whole text as one string gives the same ids (WordPiece splits on whitespace)
    assert tok("\n".join(paragraphs), add_special_tokens=False)["input_ids"][: ref.size] == ref.ravel().tolist()
    np.testing.assert_array_equal(read_blocks(tmp_path / "store", meta), ref)
    assert meta["num_blocks"] == len(ref) > 10
    assert meta["num_tokens"] == ref.size
    assert meta["num_tokens_total"] == total
    assert meta["num_tokens_dropped"] == total % BS


def test_many_small_chunks_give_identical_bytes(tmp_path, paragraphs):
    src = write_lines(tmp_path / "corpus.txt", paragraphs)
    build_token_store([src], TOK, tmp_path / "big", progress=False)
    build_token_store([src], TOK, tmp_path / "small", progress=False, chunk_bytes=200)
    for name in ("blocks.bin", "meta.json"):
        assert (tmp_path / "big" / name).read_bytes() == (tmp_path / "small" / name).read_bytes()


def test_rerun_is_byte_identical_and_meta_is_complete(tmp_path, tok, paragraphs):
    src = write_lines(tmp_path / "corpus.txt", paragraphs)
    meta = build_token_store([src], TOK, tmp_path / "a", block_size=50, progress=False)
    build_token_store([src], TOK, tmp_path / "b", block_size=50, progress=True)
    for name in ("blocks.bin", "meta.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    on_disk = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert on_disk == meta
    assert meta["format_version"] == 1
    assert meta["block_size"] == 50
    assert meta["dtype"] == "uint16"
    assert meta["vocab_size"] == 30522
    assert meta["tokenizer"] == TOK
    assert meta["vocab_sha"] == vocab_fingerprint(tok)
    assert meta["special_ids"] == {"cls": 101, "sep": 102, "mask": 103, "pad": 0, "unk": 100}
    assert meta["min_words"] is None
    assert meta["sources"] == [
        {
            "path": str(src),
            "format": "txt",
            "min_words": 0,
            "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "lines_read": len(paragraphs),
            "lines_kept": len(paragraphs),
        }
    ]
    assert (tmp_path / "a" / "blocks.bin").stat().st_size == meta["num_blocks"] * 50 * 2
    text = (tmp_path / "a" / "meta.json").read_text()
    assert ".tmp-" not in text and "/a" not in text.replace(str(src), "")
    # no temporary siblings left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "corpus.txt"]


def test_several_inputs_concatenate_in_order_with_wikitext_rules(tmp_path, tok, paragraphs):
    wiki = tmp_path / "wiki.train.raw"
    wiki.write_text(
        " = Title = \n \n" + "".join(f" {p} \n = = Sub = = \n Too short . \n" for p in paragraphs[:40]), "utf-8"
    )
    txt = write_lines(tmp_path / "more.txt", paragraphs[40:])
    meta = build_token_store([wiki, str(txt)], TOK, tmp_path / "s", block_size=64, progress=False)
    ref, total = reference_blocks(tok, paragraphs, 64)
    np.testing.assert_array_equal(read_blocks(tmp_path / "s", meta), ref)
    assert meta["num_tokens_total"] == total
    wiki_src, txt_src = meta["sources"]
    assert (wiki_src["format"], wiki_src["min_words"], wiki_src["lines_read"], wiki_src["lines_kept"]) == (
        "wikitext", 5, 2 + 3 * 40, 40,
    )
    assert (txt_src["path"], txt_src["format"], txt_src["lines_kept"]) == (str(txt), "txt", len(paragraphs) - 40)


def test_min_words_override_applies_to_all_inputs(tmp_path, tok):
    src = tmp_path / "c.txt"
    src.write_text("one two\n" * 300 + "one two three four five six\n" * 100, "utf-8")
    meta = build_token_store([src], TOK, tmp_path / "s", block_size=8, min_words=3, progress=False)
    assert meta["min_words"] == 3
    assert meta["sources"][0]["lines_kept"] == 100
    assert meta["num_tokens_total"] == 600


def test_token_store_reads_blocks(tmp_path, tok, paragraphs):
    src = write_lines(tmp_path / "corpus.txt", paragraphs)
    build_token_store([src], TOK, tmp_path / "s", progress=False)
    store = TokenStore(tmp_path / "s")
    ref, _ = reference_blocks(tok, paragraphs, BS)
    assert len(store) == len(ref)
    assert (store.block_size, store.vocab_size, store.vocab_sha) == (BS, 30522, vocab_fingerprint(tok))
    assert store.special_ids["mask"] == 103
    block = store[3]
    assert block.dtype == np.int64 and block.shape == (BS,)
    np.testing.assert_array_equal(block, ref[3])
    np.testing.assert_array_equal(store[np.int64(-1)], ref[-1])
    with pytest.raises(IndexError):
        store[len(ref)]
    with pytest.raises(TypeError):
        store[1.5]
    # picklable for DataLoader workers, also after the memory map was opened
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone[5], ref[5])
    # the saved tokenizer makes the store self-contained
    saved = load_tokenizer(str(store.tokenizer_dir))
    assert vocab_fingerprint(saved) == store.vocab_sha
    assert saved(paragraphs[:3], add_special_tokens=False)["input_ids"] == tok(
        paragraphs[:3], add_special_tokens=False
    )["input_ids"]


def test_uint32_when_vocab_does_not_fit(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[MASK]": 3, "[PAD]": 4}
    vocab.update({f"w{i}": i + 5 for i in range(70_000)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", pad_token="[PAD]",
    ).save_pretrained(tmp_path / "bigtok")
    src = tmp_path / "c.txt"
    src.write_text("w69999 w0 w12345 nope\n" * 10, "utf-8")
    meta = build_token_store([src], str(tmp_path / "bigtok"), tmp_path / "s", block_size=8, progress=False)
    assert (meta["dtype"], meta["vocab_size"], meta["num_blocks"], meta["num_tokens_dropped"]) == ("uint32", 70005, 5, 0)
    store = TokenStore(tmp_path / "s")
    assert store[0].tolist() == [70004, 5, 12350, 0] * 2


def test_bundled_wikipedia_corpus(tmp_path):
    meta = build_token_store([bundled_path("wikipedia")], TOK, tmp_path / "s", progress=False)
    assert meta["sources"][0]["format"] == "wiki-json"
    assert meta["sources"][0]["lines_read"] == 10033
    assert meta["num_tokens_total"] > 900_000
    assert len(TokenStore(tmp_path / "s")) == meta["num_blocks"] == meta["num_tokens_total"] // BS


# -- errors: a VlkdError naming the file, and nothing left behind ------------------------------------


def assert_nothing_written(tmp_path, keep: set[str]):
    assert {p.name for p in tmp_path.iterdir()} == keep


def test_missing_input(tmp_path):
    with pytest.raises(VlkdError, match="input file not found") as err:
        build_token_store([tmp_path / "nope.txt"], TOK, tmp_path / "s", progress=False)
    assert str(tmp_path / "nope.txt") in str(err.value)
    assert_nothing_written(tmp_path, set())


@pytest.mark.parametrize("content", ["", "\n\n  \n", "just a few words\n"])
def test_empty_or_too_small_corpus(tmp_path, content):
    src = tmp_path / "c.txt"
    src.write_text(content, "utf-8")
    with pytest.raises(VlkdError, match="corpus too small") as err:
        build_token_store([src], TOK, tmp_path / "s", progress=False)
    assert str(err.value).startswith(str(src))
    assert_nothing_written(tmp_path, {"c.txt"})


def test_corpus_of_only_headings(tmp_path):
    src = tmp_path / "wiki.raw"
    src.write_text(" = A = \n = = B = = \n short one\n" * 50, "utf-8")
    with pytest.raises(VlkdError, match="0 tokens after filtering"):
        build_token_store([src], TOK, tmp_path / "s", progress=False)
    assert_nothing_written(tmp_path, {"wiki.raw"})


def test_unknown_tokenizer_directory(tmp_path, paragraphs):
    src = write_lines(tmp_path / "c.txt", paragraphs)
    with pytest.raises(VlkdError, match="tokenizer"):
        build_token_store([src], str(tmp_path / "no-such-tokenizer"), tmp_path / "s", progress=False)
    assert_nothing_written(tmp_path, {"c.txt"})


def test_bad_utf8_midway_leaves_nothing(tmp_path, paragraphs):
    src = tmp_path / "c.txt"
    src.write_bytes(("\n".join(paragraphs) + "\n").encode() + b"\xff\xfe\n")
    with pytest.raises(VlkdError, match="not UTF-8"):
        build_token_store([src], TOK, tmp_path / "s", progress=False, chunk_bytes=1000)
    assert_nothing_written(tmp_path, {"c.txt"})


def test_existing_output_is_refused_unless_overwrite(tmp_path, paragraphs):
    src = write_lines(tmp_path / "c.txt", paragraphs)
    out = tmp_path / "s"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(VlkdError, match="overwrite") as err:
        build_token_store([src], TOK, out, progress=False)
    assert str(out) in str(err.value)
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    meta = build_token_store([src], TOK, out, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["blocks.bin", "meta.json", "tokenizer"]
    assert len(TokenStore(out)) == meta["num_blocks"]
    assert_nothing_written(tmp_path, {"c.txt", "s"})


def test_existing_empty_directory_is_used(tmp_path, paragraphs):
    src = write_lines(tmp_path / "c.txt", paragraphs)
    (tmp_path / "s").mkdir()
    build_token_store([src], TOK, tmp_path / "s", progress=False)
    assert (tmp_path / "s" / "meta.json").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "csv"}, "unknown text format"),
        ({"block_size": 0}, "block_size must be a positive integer"),
        ({"min_words": -2}, "min_words must be >= 0"),
    ],
)
def test_bad_arguments(tmp_path, paragraphs, kwargs, message):
    src = write_lines(tmp_path / "c.txt", paragraphs)
    with pytest.raises(VlkdError, match=message):
        build_token_store([src], TOK, tmp_path / "s", progress=False, **kwargs)
    assert_nothing_written(tmp_path, {"c.txt"})


def test_no_inputs(tmp_path):
    with pytest.raises(VlkdError, match="no input files"):
        build_token_store([], TOK, tmp_path / "s", progress=False)


# -- read-side validation ----------------------------------------------------------------------------


@pytest.fixture
def store_dir(tmp_path, paragraphs):
    src = write_lines(tmp_path / "c.txt", paragraphs)
    build_token_store([src], TOK, tmp_path / "s", progress=False)
    return tmp_path / "s"


def test_store_missing_meta(store_dir):
    (store_dir / "meta.json").unlink()
    with pytest.raises(VlkdError, match="file not found") as err:
        TokenStore(store_dir)
    assert str(store_dir / "meta.json") in str(err.value)


def test_store_malformed_meta(store_dir):
    (store_dir / "meta.json").write_text("{not json")
    with pytest.raises(VlkdError, match="malformed JSON"):
        TokenStore(store_dir)
    meta_path = store_dir / "meta.json"
    meta_path.write_text(json.dumps({"format_version": 1, "num_blocks": "3"}))
    with pytest.raises(VlkdError, match="'num_blocks' must be a positive integer") as err:
        TokenStore(store_dir)
    assert str(meta_path) in str(err.value)


def test_store_blocks_size_mismatch(store_dir):
    blocks = store_dir / "blocks.bin"
    blocks.write_bytes(blocks.read_bytes()[:-2])
    with pytest.raises(VlkdError, match="does not match meta.json") as err:
        TokenStore(store_dir)
    assert str(blocks) in str(err.value)


def test_store_directory_missing(tmp_path):
    with pytest.raises(VlkdError, match="token store directory not found"):
        TokenStore(tmp_path / "nope")


WIKITEXT = Path(__file__).parents[2] / "fixtures" / "text" / "wiki.excerpt.tokens"


def test_wikitext_unk_is_one_unknown_id_and_is_recorded(tmp_path, tok, capsys):
    """WikiText-2's `<unk>` becomes [UNK] (one id), not the pieces `<`, `unk`, `>`; meta.json says so."""
    meta = build_token_store([WIKITEXT], TOK, tmp_path / "s", block_size=8, progress=False)
    store = TokenStore(tmp_path / "s")
    ids = np.concatenate([store[i] for i in range(len(store))]).tolist()
    kept = [line.strip() for line in WIKITEXT.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("= ") and len(line.split()) >= 5]
    # the reference: each kept line's words, <unk> as the unknown id, everything else through the tokenizer
    expected = []
    for line in kept:
        for k, piece in enumerate(line.split("<unk>")):
            if k:
                expected.append(tok.unk_token_id)
            expected += tok(piece, add_special_tokens=False)["input_ids"]
    assert ids == expected[:len(ids)] and len(expected) - len(ids) < 8
    assert expected.count(tok.unk_token_id) == 6 and ids.count(tok.unk_token_id) >= 4  # the last block is partial
    assert tok.convert_tokens_to_ids("<") not in ids and tok.convert_tokens_to_ids(">") not in ids  # no marker pieces
    source = meta["sources"][0]
    assert (source["unk_marker"], source["unk_id"], source["unk_replaced"]) == ("<unk>", tok.unk_token_id, 6)
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["sources"][0]["unk_replaced"] == 6
    assert "read as WikiText" not in capsys.readouterr().err  # a .tokens file is WikiText by name: no notice


def test_txt_file_that_is_wikitext_by_content_is_read_as_wikitext_with_a_notice(tmp_path, capsys):
    txt = tmp_path / "wiki.train.txt"
    txt.write_text(WIKITEXT.read_text(encoding="utf-8"), encoding="utf-8")
    sniffed = build_token_store([txt], TOK, tmp_path / "a", block_size=8, progress=False)
    notes = [line for line in capsys.readouterr().err.splitlines() if "read as WikiText" in line]
    assert len(notes) == 1 and str(txt) in notes[0] and "--format txt" in notes[0]
    build_token_store([WIKITEXT], TOK, tmp_path / "b", block_size=8, progress=False)
    assert (tmp_path / "a" / "blocks.bin").read_bytes() == (tmp_path / "b" / "blocks.bin").read_bytes()
    assert sniffed["sources"][0]["format"] == "wikitext" and "format_detected" in sniffed["sources"][0]
    plain = build_token_store([txt], TOK, tmp_path / "c", block_size=8, fmt="txt", progress=False)
    assert plain["sources"][0]["format"] == "txt" and "unk_replaced" not in plain["sources"][0]
    assert "read as WikiText" not in capsys.readouterr().err
    # ordinary prose with an '=' in it is not taken for WikiText
    prose = tmp_path / "prose.txt"
    prose.write_text("We have x = 2 here and there.\nAnother long line of text goes here.\n" * 20)
    assert build_token_store([prose], TOK, tmp_path / "d", block_size=8, progress=False)["sources"][0]["format"] == "txt"
