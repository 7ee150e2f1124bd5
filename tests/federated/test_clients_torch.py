"""The ready PyTorch client (torch is an optional dependency: CI installs it)."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.errors import ConfigError, InvalidInputError
from tests.federated.toy import distance

torch = pytest.importorskip("torch")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 10))


def _torch_client(digits, **kw):
    from mloop.federated.clients import TorchClient

    X, y = digits
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    data = kw.pop("data", (Xt[:400], yt[:400]))
    kw.setdefault("lr", 0.2)
    kw.setdefault("batch_size", 16)
    return TorchClient(kw.pop("module", _mlp()), data,
                       loss_fn=torch.nn.functional.cross_entropy,
                       test=(Xt[400:], yt[400:]), **kw)


def test_torch_client_learns(digits):
    client = _torch_client(digits, epochs=2)
    w0 = client.get_weights()
    loss0, n, m0 = client.evaluate(w0, {})
    w1, seen, metrics = client.fit(w0, {"round": 1})
    loss1, _, m1 = client.evaluate(w1, {})
    assert n == 200 and seen == 400 and metrics["local_steps"] == 50
    assert loss1 < loss0 / 2 and m1["accuracy"] > m0["accuracy"] + 0.5
    assert client.properties()["num_examples"] == 400
    # deterministic for a seed and round
    assert distance(_torch_client(digits, epochs=2).fit(w0, {"round": 1})[0], w1) == 0.0


def test_torch_weights_follow_the_state_dict(digits):
    client = _torch_client(digits)
    module = client.module
    assert client.keys == list(module.state_dict())
    w = client.get_weights()
    assert [a.dtype for a in w][6] == np.int64  # BatchNorm's num_batches_tracked
    assert [a.shape for a in w] == [tuple(t.shape) for t in module.state_dict().values()]
    other = _torch_client(digits, module=_mlp())
    assert other.keys == client.keys
    moved = [a + 1 for a in w]
    client.set_weights(moved)
    assert distance(client.get_weights(), moved) == 0.0
    with pytest.raises(InvalidInputError, match="shape"):
        client.set_weights([w[1], w[0], *w[2:]])


def test_torch_proximal_term_keeps_closer_to_global(digits):
    client = _torch_client(digits, epochs=2)
    start = client.fit(client.get_weights(), {"round": 1})[0]
    free = client.fit(start, {"round": 2})[0]
    pulled = client.fit(start, {"round": 2, "proximal_mu": 5.0})[0]
    assert distance(pulled, start) < 0.8 * distance(free, start)


def test_torch_data_loader_adam_and_module_from_weights(digits):
    from torch.utils.data import DataLoader, TensorDataset

    from mloop.federated.clients import TorchClient

    X, y = digits
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    loader = DataLoader(TensorDataset(Xt[:400], yt[:400]), batch_size=50)
    client = _torch_client(digits, data=loader, optimizer="adam")
    w = client.fit(client.get_weights(), {"lr": 0.01})[0]
    assert client.properties() == {}
    model = TorchClient.module_from_weights(_mlp(), w)
    assert not model.training
    client.evaluate(w, {})
    with torch.no_grad():
        assert torch.equal(model(Xt), client.module(Xt))


def test_torch_regression_has_no_accuracy(digits):
    from mloop.federated.clients import TorchClient

    X, _ = digits
    Xt = torch.tensor(X, dtype=torch.float32)
    client = TorchClient(torch.nn.Linear(64, 1), (Xt, Xt[:, 20:21]),
                         loss_fn=torch.nn.functional.mse_loss, lr=0.1)
    loss, n, metrics = client.evaluate(client.get_weights(), {})
    assert n == 600 and metrics == {} and loss > 0


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"module": "not a module"}, ConfigError, "torch.nn.Module"),
    ({"optimizer": "lion"}, ConfigError, "not one of"),
    ({"lr": 0}, ConfigError, "lr must be a finite number > 0"),
    ({"data": (np.zeros((3, 64)), np.zeros(2))}, InvalidInputError, "same, non-zero"),
    ({"data": 42}, InvalidInputError, "iterable of"),
])
def test_torch_bad_arguments(digits, kwargs, error, words):
    with pytest.raises(error, match=words):
        _torch_client(digits, **kwargs)
