from __future__ import annotations

import torch
from transformers import BertConfig, BertForMaskedLM

from vlkd.losses import get_loss, mlm
from vlkd.losses.mlm import IGNORE_INDEX


def test_mlm_equals_full_logits_cross_entropy_of_hf() -> None:
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64)).eval()
    ids = torch.randint(5, 300, (3, 20))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    labels[1, 7] = ids[1, 7]
    hidden = model.bert(input_ids=ids).last_hidden_state
    ours = mlm(hidden, labels, model.cls)
    reference = model(input_ids=ids, labels=labels).loss  # logits at every position, then CE
    assert torch.allclose(ours, reference, atol=1e-6)
    assert get_loss("mlm").fn is mlm
