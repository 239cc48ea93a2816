"""The training and held-out blocks of a token store, shared by every recipe that trains on text (the MLM
baseline and the distillation student), so both hold out and draw exactly the same blocks."""

from __future__ import annotations

from dataclasses import dataclass

from vlkd.config import bounded
from vlkd.data.text.collate import IndexedBlocks
from vlkd.data.text.store import META_FILE, TokenStore
from vlkd.errors import VlkdError


@dataclass
class TextData:
    train: str = ""  # token store directory (`vlkd prepare text`)
    valid: str | None = None  # a separate token store; else the last `valid_blocks` of train are held out
    valid_blocks: int = bounded(512, ge=1)
    mlm_probability: float = bounded(0.15, gt=0, lt=1)


TRAINING_IDS = ("cls", "sep", "mask")  # what `[CLS] block [SEP]` inputs with MLM masking need


def open_store(path: str, key: str) -> TokenStore:
    """A token store to train on: it must name the special-token ids training uses."""
    if not path:
        raise VlkdError(f"config key {key!r} is required: a token store directory from `vlkd prepare text`")
    store = TokenStore(path)
    lacking = [name for name in TRAINING_IDS if not isinstance(store.special_ids.get(name), int)
               or isinstance(store.special_ids.get(name), bool)]
    if lacking:
        raise VlkdError(f"meta.json special_ids lacks an integer id for {', '.join(lacking)} (training needs "
                        f"{', '.join(TRAINING_IDS)}); rebuild the store with `vlkd prepare text`",
                        store.path / META_FILE)
    return store


def split_train_valid(data: TextData) -> tuple[TokenStore, IndexedBlocks, IndexedBlocks]:
    """The training store, its training blocks and the held-out blocks (a separate store, or the last
    `valid_blocks` of train, at most a tenth). Items carry each block's index in its store."""
    store = open_store(data.train, "data.train")
    if data.valid:
        valid = open_store(data.valid, "data.valid")
        if valid.vocab_sha != store.vocab_sha:
            raise VlkdError(f"vocabulary differs from the training store's ({data.train})", data.valid)
        return store, IndexedBlocks(store, range(len(store))), IndexedBlocks(valid, range(len(valid)))
    held = min(data.valid_blocks, len(store) // 10)
    return (store, IndexedBlocks(store, range(len(store) - held)),
            IndexedBlocks(store, range(len(store) - held, len(store))))


def check_model_fits(vocab_size: int, max_positions: int, store: TokenStore) -> None:
    """A model must embed every id of the store and a `[CLS] block [SEP]` input."""
    if vocab_size < store.vocab_size:
        raise VlkdError(f"mismatched vocab: model vocab_size {vocab_size} < token store vocab_size "
                        f"{store.vocab_size}", store.path)
    if store.block_size + 2 > max_positions:
        raise VlkdError(f"block_size {store.block_size} + 2 exceeds the model's max_position_embeddings "
                        f"{max_positions}", store.path)
