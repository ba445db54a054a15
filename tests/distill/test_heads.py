"""Byte heads: shapes, (non-)dependence on previous bytes, no length cap."""

import pytest
import torch

from sklearn_lts.distill._heads import LinearByteHead, TransformerByteHead, make_byte_head


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (shared cores)
    yield
    torch.set_num_threads(n)


def test_linear_head_shape_and_ignores_bytes():
    torch.manual_seed(0)
    head = LinearByteHead(16, max_bytes=10)
    h = torch.randn(3, 16)
    g1 = torch.randint(0, 256, (3, 10))
    g2 = torch.randint(0, 256, (3, 10))
    out = head(h, g1)
    assert out.shape == (3, 10, 260)
    torch.testing.assert_close(out, head(h, g2))  # parallel projections: no byte input
    assert head(h, g1[:, :4]).shape == (3, 4, 260)


def test_transformer_head_is_causal_in_the_bytes():
    torch.manual_seed(0)
    head = TransformerByteHead(16, d_byte=32, n_layers=2, n_heads=4).eval()
    h = torch.randn(2, 16)
    g = torch.randint(0, 256, (2, 6))
    base = head(h, g)
    g2 = g.clone()
    g2[:, 2] = (g2[:, 2] + 1) % 256  # change byte 3 (index 2)
    out = head(h, g2)
    # slots 0..2 predict bytes 1..3 and only read bytes before them: unchanged
    torch.testing.assert_close(out[:, :3], base[:, :3])
    assert not torch.allclose(out[:, 3:], base[:, 3:])
    # conditioned on the hidden state
    assert not torch.allclose(head(h + 1.0, g)[:, 0], base[:, 0])


def test_transformer_head_has_no_length_cap():
    head = TransformerByteHead(8, d_byte=16, n_layers=1, n_heads=2)
    g = torch.randint(0, 256, (2, 64))
    assert head(torch.randn(2, 8), g).shape == (2, 64, 260)
    capped = TransformerByteHead(8, d_byte=16, n_layers=1, n_heads=2, max_bytes=5)
    assert capped(torch.randn(2, 8), g).shape == (2, 5, 260)


def test_padding_bytes_are_accepted():
    head = TransformerByteHead(8, d_byte=16, n_layers=1, n_heads=2)
    g = torch.tensor([[1, 2, -100, -100]])
    assert torch.isfinite(head(torch.randn(1, 8), g)).all()


def test_make_byte_head():
    assert isinstance(make_byte_head("linear", 8, 10), LinearByteHead)
    assert isinstance(make_byte_head("transformer", 8, None), TransformerByteHead)
    with pytest.raises(ValueError):
        make_byte_head("linear", 8, None)
    with pytest.raises(ValueError):
        make_byte_head("mlp", 8, 10)


def test_heads_learn_a_byte_sequence():
    # the autoregressive head can fit b_2 | b_1 where the linear head cannot (XOR-like data)
    torch.manual_seed(0)
    h = torch.zeros(64, 4)  # same hidden state everywhere: only previous bytes can help
    first = torch.randint(0, 2, (64,)) * 10 + 65
    second = torch.where(first == 65, 66, 67)
    gold = torch.stack([first, second], 1)
    losses = {}
    for name, head in [("linear", LinearByteHead(4, 2)),
                       ("transformer", TransformerByteHead(4, 16, 1, 2))]:
        opt = torch.optim.Adam(head.parameters(), lr=3e-2)
        for _ in range(100):
            loss = torch.nn.functional.cross_entropy(head(h, gold)[:, 1].reshape(-1, 260),
                                                     gold[:, 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[name] = loss.item()
    assert losses["transformer"] < 0.05 < 0.5 < losses["linear"]
