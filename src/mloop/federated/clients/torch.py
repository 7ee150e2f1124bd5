"""A ready client for PyTorch modules: the weights are the ``state_dict``'s values.

The order is the ``state_dict``'s key order when the client is made (parameters and
buffers, e.g. BatchNorm's running statistics and its integer ``num_batches_tracked``),
each array in its own dtype. Importing this module imports torch; ``mloop.federated``
imports it only when :class:`TorchClient` is first used.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.arrays import check_like
from mloop.federated.client import Client
from mloop.federated.clients import _config as cfg
from mloop.federated.partition import label_histogram
from mloop.federated.types import Config, Metrics, Weights

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], float], torch.optim.Optimizer]
_OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}


def _tensors(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(X, y)`` when ``data`` is a pair of tensors (or arrays) of equal length, else None
    (then it must be an iterable of batches, such as a ``DataLoader``)."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return None
    X, y = (torch.as_tensor(d) for d in data)
    if X.ndim == 0 or X.shape[0] == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise InvalidInputError(f"{name} must be (X, y) with the same, non-zero number of rows,"
                                f" not shapes {tuple(X.shape)} and {tuple(y.shape)}")
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        raise InvalidInputError(f"{name}'s X holds NaN or infinite values")
    return X, y


def _state_arrays(module: torch.nn.Module, keys: list[str]) -> Weights:
    state = module.state_dict()
    return [state[k].detach().cpu().numpy().copy() for k in keys]


class TorchClient(Client):
    """A ``torch.nn.Module`` trained with a torch optimizer on local data.

    ``data`` (and ``test``) is ``(X, y)`` tensors, batched here (``batch_size``, shuffled
    each epoch by a generator seeded from ``seed`` and the round), or any iterable of
    ``(inputs, targets)`` batches such as a ``DataLoader`` (its own order). ``optimizer`` is
    "sgd", "adam" or ``f(parameters, lr) -> Optimizer``, made afresh each ``fit`` (a
    round's optimizer state does not leak into the next). Config ``lr``, ``epochs`` and
    ``batch_size`` override the arguments; config ``proximal_mu`` = μ > 0 adds FedProx's
    μ/2·‖w − w_global‖² over the trainable parameters to every batch's loss (Li et al.
    2020). ``loss_fn`` returns the batch's mean loss. ``evaluate`` gives the mean loss
    and, when the outputs are class scores (N × C) and the targets integers, ``accuracy``.
    """

    def __init__(self, module: torch.nn.Module, data: Any, *,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 optimizer: str | OptimizerFactory = "sgd", lr: float = 0.01,
                 epochs: int = 1, batch_size: int = 32, test: Any = None,
                 seed: int = 0) -> None:
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"TorchClient takes a torch.nn.Module, not {type(module).__name__}")
        if not callable(loss_fn):
            raise ConfigError("loss_fn must be callable: loss_fn(outputs, targets) -> tensor")
        if isinstance(optimizer, str) and optimizer not in _OPTIMIZERS:
            raise ConfigError(f"optimizer {optimizer!r} is not one of {sorted(_OPTIMIZERS)}; "
                              "or pass f(parameters, lr) -> torch.optim.Optimizer")
        if not isinstance(optimizer, str) and not callable(optimizer):
            raise ConfigError("optimizer must be a name or f(parameters, lr) -> Optimizer")
        self.module, self.loss_fn, self.optimizer = module, loss_fn, optimizer
        self.lr = cfg.nonnegative_float(lr, "lr", positive=True)
        self.epochs = cfg.positive_int(epochs, "epochs")
        self.batch_size = cfg.positive_int(batch_size, "batch_size")
        self.seed = cfg.seed_of(seed)
        self.data, self.test = data, data if test is None else test
        self._train_xy = _tensors(data, "data")
        self._test_xy = _tensors(self.test, "test")
        for what, given, xy in (("data", data, self._train_xy), ("test", self.test,
                                                                  self._test_xy)):
            if xy is None and not isinstance(given, Iterable):
                raise InvalidInputError(f"{what} must be (X, y) tensors or an iterable of "
                                        "(inputs, targets) batches such as a DataLoader")
        self.keys = list(module.state_dict().keys())

    # -- weights -------------------------------------------------------------------
    def get_weights(self) -> Weights:
        """The ``state_dict`` values as numpy copies, in :attr:`keys` order."""
        return _state_arrays(self.module, self.keys)

    def set_weights(self, weights: Weights) -> None:
        """Load ``weights`` (checked against the module's shapes) into the module."""
        self._load(self.module, weights)

    def _load(self, module: torch.nn.Module, weights: Weights) -> None:
        current = _state_arrays(module, self.keys)
        check_like(weights, current, what="weights")
        state = {k: torch.from_numpy(np.array(w, dtype=ref.dtype, copy=True))
                 for k, w, ref in zip(self.keys, weights, current, strict=True)}
        module.load_state_dict(state, strict=True)

    @staticmethod
    def module_from_weights(module: torch.nn.Module, weights: Weights) -> torch.nn.Module:
        """A copy of ``module`` (the architecture the clients trained) holding ``weights``
        in its ``state_dict`` order, in eval mode: ready to predict and to log."""
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"module_from_weights takes a torch.nn.Module, not "
                              f"{type(module).__name__}")
        out = copy.deepcopy(module)
        keys = list(out.state_dict().keys())
        current = _state_arrays(out, keys)
        check_like(weights, current, what="weights")
        out.load_state_dict({k: torch.from_numpy(np.array(w, dtype=ref.dtype, copy=True))
                             for k, w, ref in zip(keys, weights, current, strict=True)})
        return out.eval()

    # -- data ------------------------------------------------------------------------
    def _batches(self, xy: tuple[torch.Tensor, torch.Tensor] | None, given: Any,
                 batch: int, generator: torch.Generator | None) -> Iterator[Any]:
        if xy is None:
            yield from given
            return
        X, y = xy
        n = X.shape[0]
        order = (torch.randperm(n, generator=generator) if generator is not None
                 else torch.arange(n))
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            yield X[rows], y[rows]

    # -- training --------------------------------------------------------------------
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        """Train ``epochs`` from ``weights``: (new weights, samples seen in one epoch,
        {train_loss: mean batch loss of the last epoch, local_steps})."""
        self.set_weights(weights)
        lr = self.lr if config.get("lr") is None else cfg.nonnegative_float(
            config["lr"], "config 'lr'", positive=True)
        epochs = cfg.config_int(config, "epochs", self.epochs)
        batch = cfg.config_int(config, "batch_size", self.batch_size)
        mu = cfg.proximal_mu(config)
        seed = self.seed * 1_000_003 + cfg.round_of(config)
        torch.manual_seed(seed)  # dropout and other random layers
        generator = torch.Generator().manual_seed(seed)
        params = [p for p in self.module.parameters() if p.requires_grad]
        anchor = [p.detach().clone() for p in params] if mu > 0 else None
        make = _OPTIMIZERS[self.optimizer] if isinstance(self.optimizer, str) else self.optimizer
        opt = make(params, lr)
        self.module.train()
        steps = seen = 0
        total = 0.0
        for _ in range(epochs):
            seen, total = 0, 0.0
            for inputs, targets in self._batches(self._train_xy, self.data, batch, generator):
                opt.zero_grad()
                loss = self.loss_fn(self.module(inputs), targets)
                total += float(loss.detach()) * len(targets)
                if anchor is not None:
                    loss = loss + mu / 2 * sum(((p - a) ** 2).sum()
                                               for p, a in zip(params, anchor, strict=True))
                loss.backward()
                opt.step()
                steps, seen = steps + 1, seen + len(targets)
        if seen == 0:
            raise InvalidInputError("the training data gave no batches; check the loader")
        return self.get_weights(), seen, {"train_loss": total / seen, "local_steps": steps}

    @torch.no_grad()
    def evaluate(self, weights: Weights, config: Config) -> tuple[float, int, Metrics]:
        """Mean loss (and ``accuracy`` for class scores) of ``weights`` on the test data
        (else the training data)."""
        self.set_weights(weights)
        self.module.eval()
        n, total, correct, classify = 0, 0.0, 0, True
        for inputs, targets in self._batches(self._test_xy, self.test, self.batch_size, None):
            out = self.module(inputs)
            k = len(targets)
            total += float(self.loss_fn(out, targets)) * k
            classify = classify and out.ndim == 2 and not targets.is_floating_point() \
                and targets.ndim == 1
            if classify:
                correct += int((out.argmax(dim=1) == targets).sum())
            n += k
        if n == 0:
            raise InvalidInputError("the test data gave no batches; check the loader")
        metrics: Metrics = {"accuracy": correct / n} if classify else {}
        return total / n, n, metrics

    def properties(self) -> dict[str, Any]:
        """``num_examples`` and, for integer targets given as tensors, ``label_histogram``."""
        if self._train_xy is None:
            return {}
        X, y = self._train_xy
        props: dict[str, Any] = {"num_examples": int(X.shape[0])}
        if not y.is_floating_point() and y.ndim == 1:
            props["label_histogram"] = label_histogram(y.numpy())
        return props


__all__ = ["TorchClient"]
