import pytest
import torch
import torch.nn.functional as F

from vlkd.losses import dualvgr_consistency, hsic
from vlkd.models.dualvgr import MFB, DualVGR, DualVGRConfig, GraphAttention


def tiny(**kw) -> DualVGRConfig:
    base = dict(module_dim=32, word_dim=8, num_clips=8, heads=4, appearance_dim=12, motion_dim=10, mfb_dim=20)
    return DualVGRConfig(**{**base, **kw})


def inputs(b: int, n: int, frames: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, n, frames, 12, generator=g), torch.randn(b, n, 10, generator=g),
            torch.randint(2, 50, (b, 6), generator=g), torch.tensor([6, 2, 4, 1][:b]))


@pytest.mark.parametrize("n", [8, 16])
def test_forward_shapes(n):
    model = DualVGR(tiny(num_clips=n, graph_layers=2, unit_layers=2), vocab_size=50, num_answers=7)
    out = model(*inputs(4, n))
    assert out.logits.shape == (4, 7)
    for t in (out.fused, out.appearance, out.motion):
        assert t.shape == (4, n, 32)
    for trace in (out.common_a, out.common_m, out.specific_a, out.specific_m):
        assert len(trace) == 4 and all(t.shape == (4, n, 32) for t in trace)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _graphs(model: DualVGR) -> list[GraphAttention]:
    return [m for m in model.modules() if isinstance(m, GraphAttention)]


def test_graph_layers_are_distinct_modules_with_their_own_parameters():
    one = DualVGR(tiny(graph_layers=1), 50, 7)
    four = DualVGR(tiny(graph_layers=4), 50, 7)
    per_graph = sum(p.numel() for p in _graphs(one)[0].parameters())
    assert per_graph == 32 * 32 + 32 + 2 * 32  # projection + bias + a_src/a_dst (4 heads x 8)
    # 4 graph branches (common/specific x appearance/motion), 3 more layers each
    assert n_params(four) - n_params(one) == 4 * 3 * per_graph
    assert len(_graphs(four)) == 16 and len({id(g) for g in _graphs(four)}) == 16
    assert len({p.data_ptr() for p in four.parameters()}) == len(list(four.parameters()))
    two_units = DualVGR(tiny(graph_layers=3, unit_layers=2), 50, 7)
    assert len({id(g) for g in _graphs(two_units)}) == 2 * 4 * 3


def pairwise_graph_attention(layer: GraphAttention, x, gate):
    """Loop over every (video, head, i, j) with the concatenated pair [W x_i ‖ W x_j] (dropout off)."""
    b, n, _ = x.shape
    h, d = layer.heads, layer.head_dim
    wx = layer.proj(x).view(b, n, h, d)
    out = torch.zeros(b, n, h, d)
    for v in range(b):
        for k in range(h):
            a = torch.cat([layer.a_src[k], layer.a_dst[k]])
            e = torch.tensor([[float(F.leaky_relu(a @ torch.cat([wx[v, i, k], wx[v, j, k]]), layer.leaky_slope))
                               for j in range(n)] for i in range(n)])
            att = e.softmax(-1)
            values = wx[v, :, k] * gate[v]
            out[v, :, k] = F.elu(att @ values)
    return out.reshape(b, n, h * d)


def test_batched_graph_attention_equals_pairwise_loops():
    torch.manual_seed(0)
    layer = GraphAttention(16, heads=4, dropout=0.15, leaky_slope=0.01).eval()
    x, gate = torch.randn(3, 5, 16), torch.rand(3, 5, 1)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, gate), pairwise_graph_attention(layer, x, gate), atol=1e-5, rtol=1e-5)


def test_graph_attention_mask_ignores_padded_clips():
    torch.manual_seed(0)
    layer = GraphAttention(16, heads=2, dropout=0.0, leaky_slope=0.01).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    changed = x.clone()
    changed[0, 4:] = 100.0
    a, b = layer(x, mask=mask), layer(changed, mask=mask)
    torch.testing.assert_close(a[0, :4], b[0, :4])


def test_mfb_matches_plain_formula():
    torch.manual_seed(0)
    mfb = MFB((6, 5), 4, mm_dim=3, factor=2)
    x, y = torch.randn(2, 7, 6), torch.randn(2, 7, 5)
    left, right = F.relu(mfb.left(x)), F.relu(mfb.right(y))
    z = torch.stack([(left * right)[..., 2 * k] + (left * right)[..., 2 * k + 1] for k in range(3)], -1)
    torch.testing.assert_close(mfb(x, y), F.relu(mfb.out(z)))


def test_word_vectors_load_and_shape_is_checked():
    model = DualVGR(tiny(), 50, 7)
    vectors = torch.randn(50, 8)
    model.load_word_vectors(vectors)
    assert torch.equal(model.question.embed.weight, vectors)
    with pytest.raises(ValueError):
        model.load_word_vectors(torch.randn(50, 9))


def test_padding_does_not_change_the_answer():
    model = DualVGR(tiny(), 50, 7).eval()
    app, mot, q, _ = inputs(1, 8)
    short = model(app, mot, q[:, :3], torch.tensor([3])).logits
    padded = torch.cat([q[:, :3], torch.zeros(1, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model(app, mot, padded, torch.tensor([3])).logits, short, atol=1e-5, rtol=1e-5)


def test_a_few_steps_lower_the_loss_and_reach_every_parameter():
    torch.manual_seed(0)
    model = DualVGR(tiny(graph_layers=2), 50, 7)
    app, mot, q, lengths = inputs(4, 8)
    labels = torch.tensor([1, 3, 5, 6])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        out = model(app, mot, q, lengths)
        loss = F.cross_entropy(out.logits, labels)
        # the common branches of earlier graph layers feed only the regularisers, as in the reference
        regularisers = sum(dualvgr_consistency(a, m) + 1e-3 * hsic(s, a)
                           for a, m, s in zip(out.common_a, out.common_m, out.specific_a))
        opt.zero_grad()
        (loss + regularisers).backward()
        if step == 0:
            # a bias before a softmax cannot change it: its gradient is zero up to rounding (exactly zero on
            # some CPUs, ~1e-9 on others)
            silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 1e-6]
            assert silent == ["units.0.query_attention.score.bias", "pool.score.bias"], silent
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_without_clip_positions_the_order_of_clips_is_invisible_and_with_them_it_is_not():
    perm = torch.tensor([2, 0, 3, 1, 7, 5, 4, 6])
    app, mot, q, lengths = inputs(4, 8)
    blind = DualVGR(tiny(graph_layers=2), 50, 7).eval()
    torch.testing.assert_close(blind(app[:, perm], mot[:, perm], q, lengths).logits, blind(app, mot, q, lengths).logits,
                               atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    ordered = DualVGR(tiny(graph_layers=2, clip_positions=True), 50, 7).eval()
    with torch.no_grad():
        ordered.clip_position.weight.normal_()  # trained positions are far from the 0.02 initialisation
    moved = (ordered(app[:, perm], mot[:, perm], q, lengths).logits - ordered(app, mot, q, lengths).logits).abs()
    assert moved.max() > 1e-3
    # the only new parameters are one vector per clip; a model saved without the option has none
    assert n_params(ordered) - n_params(blind) == 8 * 32 and "clip_position.weight" not in blind.state_dict()
