"""Ready clients for scikit-learn's linear models: the weights are ``[coef_, intercept_]``.

- :class:`SGDClient` trains ``SGDClassifier``/``SGDRegressor`` by ``partial_fit`` over
  shuffled minibatches and applies FedProx's proximal term itself;
- :class:`LogisticRegressionClient` trains ``LogisticRegression`` by warm start, a few
  solver iterations a round (no proximal term: use :class:`SGDClient` for FedProx).

Every client of a federation starts from the same zero weights, so all must know the same
classes: pass ``classes`` (all labels of the task) when a client's data may lack some.
``model_from_weights`` turns the final weights into a fitted estimator, without data, for
logging and registering.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.metrics import accuracy_score, hinge_loss, log_loss, mean_squared_error, r2_score

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.arrays import check_like
from mloop.federated.client import Client
from mloop.federated.clients import _config as cfg
from mloop.federated.partition import label_histogram
from mloop.federated.types import Config, Metrics, Weights


def _classes_of(estimator: Any, y: np.ndarray, classes: Any) -> np.ndarray | None:
    """The sorted classes of a classifier (``classes`` or those in ``y``); None for a
    regressor. Raises when ``y`` holds a label outside ``classes``."""
    if not is_classifier(estimator):
        return None
    found = np.unique(y)
    if classes is None:
        chosen = found
    else:
        chosen = np.unique(np.asarray(classes))
        extra = np.setdiff1d(found, chosen)
        if extra.size:
            raise InvalidInputError(f"labels {extra[:5].tolist()} are not among classes "
                                    f"{chosen[:10].tolist()}; pass every label of the task")
    if chosen.size < 2:
        raise InvalidInputError(f"a classifier needs at least 2 classes, got "
                                f"{chosen.tolist()}; pass classes=[…] with all labels")
    return chosen


def _zero_fitted(template: BaseEstimator, n_features: int,
                 classes: np.ndarray | None) -> Any:
    """A clone of ``template`` with every fitted attribute set and zero weights (fitted on
    one zero row per class, then zeroed)."""
    est = clone(template)
    y = classes if classes is not None else np.zeros(1)
    X = np.zeros((len(y), n_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if isinstance(est, LogisticRegression):
            est.fit(X, y)
        elif classes is not None:
            est.partial_fit(X, y, classes=classes)
        else:
            est.partial_fit(X, y)
    est.coef_ = np.zeros_like(est.coef_, dtype=np.float64, order="C")
    est.intercept_ = np.zeros_like(est.intercept_, dtype=np.float64)
    if hasattr(est, "t_"):
        est.t_ = 1.0  # SGD's step counter: the zero-row fit was no step
    return est


def _load(est: Any, weights: Weights) -> None:
    """Set ``[coef_, intercept_]`` from (copies of) ``weights`` after checking their shapes."""
    check_like(weights, [est.coef_, est.intercept_], what="weights")
    est.coef_ = np.array(weights[0], dtype=np.float64, order="C", copy=True)
    est.intercept_ = np.array(weights[1], dtype=np.float64, copy=True)


class _LinearClient(Client):
    """Shared by the scikit-learn clients: data checks, weights, evaluation, properties."""

    supported: ClassVar[tuple[type, ...]] = ()

    def __init__(self, estimator: Any, X: Any, y: Any, *, classes: Any = None,
                 X_test: Any = None, y_test: Any = None, seed: int = 0) -> None:
        if not isinstance(estimator, self.supported):
            names = " or ".join(t.__name__ for t in self.supported)
            raise ConfigError(f"{type(self).__name__} takes a {names}, not "
                              f"{type(estimator).__name__}; subclass mloop.federated.Client "
                              "for other models")
        self.X = cfg.features(X)
        self.y = cfg.targets(y, self.X.shape[0])
        if (X_test is None) != (y_test is None):
            raise ConfigError("pass both X_test and y_test, or neither (then evaluate scores "
                              "the training data)")
        self.X_test = self.X if X_test is None else cfg.features(X_test, "X_test")
        self.y_test = (self.y if y_test is None
                       else cfg.targets(y_test, self.X_test.shape[0], "y_test"))
        if self.X_test.shape[1] != self.X.shape[1]:
            raise InvalidInputError(f"X_test has {self.X_test.shape[1]} features, X has "
                                    f"{self.X.shape[1]}")
        self.seed = cfg.seed_of(seed)
        self.classes = _classes_of(estimator, np.concatenate([self.y, self.y_test]), classes)
        self.estimator = _zero_fitted(self._prepare(estimator), self.X.shape[1], self.classes)

    def _prepare(self, estimator: Any) -> Any:
        """The estimator to clone, after the subclass's checks and settings."""
        return estimator

    def get_weights(self) -> Weights:
        """``[coef_, intercept_]`` (copies, float64): zeros until the first ``fit``."""
        return [self.estimator.coef_.copy(), self.estimator.intercept_.copy()]

    def evaluate(self, weights: Weights, config: Config) -> tuple[float, int, Metrics]:
        """Log loss (hinge loss for a classifier without probabilities) and ``accuracy``, or
        MSE and ``r2`` for a regressor, on the test data (else the training data)."""
        _load(self.estimator, weights)
        return self.score(self.X_test, self.y_test)

    def score(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int, Metrics]:
        """(loss, rows, metrics) of the current weights on ``X``, ``y``."""
        est = self.estimator
        n = int(X.shape[0])
        if self.classes is None:
            pred = est.predict(X)
            metrics: Metrics = {"r2": float(r2_score(y, pred))} if n >= 2 else {}
            return float(mean_squared_error(y, pred)), n, metrics
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X)
            loss = log_loss(y, proba, labels=self.classes)
            pred = self.classes[np.argmax(proba, axis=1)]
        else:
            decision = est.decision_function(X)
            loss = hinge_loss(y, decision, labels=self.classes)
            pred = est.predict(X)
        return float(loss), n, {"accuracy": float(accuracy_score(y, pred))}

    def properties(self) -> dict[str, Any]:
        """``num_examples`` and, for a classifier, ``label_histogram`` of the training data."""
        props: dict[str, Any] = {"num_examples": int(self.X.shape[0])}
        if self.classes is not None:
            props["label_histogram"] = label_histogram(self.y)
        return props

    @classmethod
    def model_from_weights(cls, estimator_template: Any, weights: Weights, *,
                           classes: Any = None) -> Any:
        """A fitted clone of ``estimator_template`` holding ``weights`` (``classes``: every
        label, required for a classifier), ready to predict and to log."""
        if not isinstance(estimator_template, cls.supported):
            raise ConfigError(f"{cls.__name__}.model_from_weights takes the estimator the "
                              f"clients used, not {type(estimator_template).__name__}")
        if len(weights) != 2 or np.ndim(weights[0]) not in (1, 2):
            raise InvalidInputError("weights must be [coef_, intercept_] as the clients sent")
        chosen = None
        if is_classifier(estimator_template):
            if classes is None:
                raise ConfigError("pass classes=[…] (every label) to rebuild a classifier")
            chosen = _classes_of(estimator_template, np.asarray(classes), classes)
        est = _zero_fitted(cls._template(estimator_template), int(np.shape(weights[0])[-1]),
                           chosen)
        _load(est, [np.asarray(w) for w in weights])
        return est

    @classmethod
    def _template(cls, estimator: Any) -> Any:
        return estimator


class SGDClient(_LinearClient):
    """``SGDClassifier``/``SGDRegressor`` trained by ``partial_fit`` on shuffled minibatches.

    ``fit`` runs ``epochs`` passes (config ``epochs`` overrides), each over the local data
    in a fresh order (seeded by ``seed`` and the round) cut into ``batch_size`` rows
    (config ``batch_size``; None: all rows in one ``partial_fit``). Config ``lr`` sets a
    constant step size (``eta0``) for that fit. Config ``proximal_mu`` = μ > 0 adds
    FedProx's term μ/2·‖w − w_global‖² (Li et al. 2020, "Federated optimization in
    heterogeneous networks"): scikit-learn takes one step per row, so after a minibatch of
    b rows at step size η the weights are pulled back as b steps of that term would pull
    them: w ← w_global + (1 − η·μ)^b · (w − w_global). The step size η is ``lr``, else
    ``eta0`` (``learning_rate`` "constant"/"adaptive"), else ``eta0 / t^power_t``
    ("invscaling"); with "optimal" or the passive-aggressive rates FedProx needs ``lr``.
    Schedules that decay with scikit-learn's step counter ``t_`` see it set at the start of
    each fit as if the client had trained in every earlier round (1 + (round − 1) ·
    epochs · rows), so a fit depends only on its weights and config.
    """

    supported = (SGDClassifier, SGDRegressor)

    def __init__(self, estimator: Any, X: Any, y: Any, *, classes: Any = None,
                 epochs: int = 1, batch_size: int | None = None, X_test: Any = None,
                 y_test: Any = None, seed: int = 0) -> None:
        self.epochs = cfg.positive_int(epochs, "epochs")
        self.batch_size = cfg.optional_batch(batch_size, "batch_size")
        super().__init__(estimator, X, y, classes=classes, X_test=X_test, y_test=y_test,
                         seed=seed)

    def _prepare(self, estimator: Any) -> Any:
        params = estimator.get_params()
        if params.get("average"):
            raise ConfigError("SGDClient needs average=False: with averaging the weights "
                              "sent would not be the ones trained on")
        if params.get("class_weight") == "balanced":
            raise ConfigError("partial_fit cannot use class_weight='balanced'; pass a dict "
                              "of class weights computed from all labels")
        if params.get("early_stopping"):
            raise ConfigError("SGDClient needs early_stopping=False (partial_fit ignores it)")
        if params.get("random_state") is None:
            estimator = clone(estimator).set_params(random_state=self.seed)
        return estimator

    @classmethod
    def _template(cls, estimator: Any) -> Any:
        return clone(estimator).set_params(average=False, early_stopping=False)

    def _step_size(self) -> float:
        est = self.estimator
        if est.learning_rate in ("constant", "adaptive"):
            return float(est.eta0)
        if est.learning_rate == "invscaling":
            return float(est.eta0 / est.t_ ** est.power_t)
        raise ConfigError(f"FedProx needs a known step size: send 'lr' in the config or use "
                          f"learning_rate='constant', not {est.learning_rate!r}")

    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        """Train from ``weights`` (see the class): (new weights, rows, {local_steps})."""
        _load(self.estimator, weights)
        epochs = cfg.config_int(config, "epochs", self.epochs)
        batch = cfg.config_int(config, "batch_size", self.batch_size or self.X.shape[0])
        mu = cfg.proximal_mu(config)
        rng = np.random.default_rng([self.seed, cfg.round_of(config)])
        est = self.estimator
        saved = {"learning_rate": est.learning_rate, "eta0": est.eta0}
        if config.get("lr") is not None:
            lr = cfg.nonnegative_float(config["lr"], "config 'lr'", positive=True)
            est.set_params(learning_rate="constant", eta0=lr)
        # the step counter as if this client had trained in every earlier round: a fit is
        # a function of (weights, config), whatever this client did before
        n = self.X.shape[0]
        est.t_ = 1.0 + max(cfg.round_of(config) - 1, 0) * epochs * n
        try:
            anchor = [w.copy() for w in self.get_weights()] if mu > 0 else None
            steps = self._epochs(epochs, batch, mu, anchor, rng)
        finally:
            est.set_params(**saved)
        return self.get_weights(), int(n), {"local_steps": steps}

    def _epochs(self, epochs: int, batch: int, mu: float, anchor: Weights | None,
                rng: np.random.Generator) -> int:
        est, n, steps = self.estimator, self.X.shape[0], 0
        extra = {} if self.classes is None else {"classes": self.classes}
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                rows = order[start:start + batch]
                est.partial_fit(self.X[rows], self.y[rows], **extra)
                steps += 1
                if anchor is not None:
                    keep = max(0.0, 1.0 - self._step_size() * mu) ** len(rows)
                    est.coef_ = anchor[0] + keep * (est.coef_ - anchor[0])
                    est.intercept_ = anchor[1] + keep * (est.intercept_ - anchor[1])
        return steps


class LogisticRegressionClient(_LinearClient):
    """``LogisticRegression`` trained by warm start: each ``fit`` runs at most ``max_iter``
    solver iterations (config ``max_iter`` or ``epochs`` overrides) from the global weights.

    Classes missing locally are added as zero-weight rows so every client's weights have
    the same shape. The solvers take no proximal term: config ``proximal_mu`` > 0 raises
    :class:`ConfigError` (use :class:`SGDClient` with ``loss="log_loss"`` for FedProx);
    ``lr`` is ignored (the solvers choose their own steps). Not converging within
    ``max_iter`` is the point of local training, so that warning is silenced.
    """

    supported = (LogisticRegression,)

    def __init__(self, estimator: Any, X: Any, y: Any, *, classes: Any = None,
                 max_iter: int = 5, X_test: Any = None, y_test: Any = None,
                 seed: int = 0) -> None:
        self.max_iter = cfg.positive_int(max_iter, "max_iter")
        super().__init__(estimator, X, y, classes=classes, X_test=X_test, y_test=y_test,
                         seed=seed)
        # every class once, even those missing here, with weight 0: same shapes everywhere
        missing = np.setdiff1d(np.asarray(self.classes), self.y)
        self._X_fit = np.vstack([self.X, np.zeros((missing.size, self.X.shape[1]))])
        self._y_fit = np.concatenate([self.y, missing])
        self._w_fit = np.concatenate([np.ones(self.X.shape[0]), np.zeros(missing.size)])

    def _prepare(self, estimator: Any) -> Any:
        if estimator.get_params().get("solver") == "liblinear":
            raise ConfigError("liblinear cannot warm start; use solver='lbfgs' (the default)")
        est = clone(estimator).set_params(warm_start=True)
        if est.get_params().get("random_state") is None:  # sag/saga shuffle with it
            est.set_params(random_state=self.seed)
        return est

    @classmethod
    def _template(cls, estimator: Any) -> Any:
        return clone(estimator).set_params(warm_start=True)

    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        """At most ``max_iter`` solver iterations from ``weights``: (new weights, rows,
        {local_steps: iterations run})."""
        if cfg.proximal_mu(config) > 0:
            raise ConfigError("LogisticRegression's solvers take no proximal term, so "
                              "FedProx cannot run on LogisticRegressionClient; use SGDClient "
                              "with SGDClassifier(loss='log_loss') instead")
        default = cfg.config_int(config, "epochs", self.max_iter)
        max_iter = cfg.config_int(config, "max_iter", default)
        _load(self.estimator, weights)
        est = self.estimator.set_params(max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(self._X_fit, self._y_fit, sample_weight=self._w_fit)
        est.coef_ = np.ascontiguousarray(est.coef_, dtype=np.float64)
        est.intercept_ = np.asarray(est.intercept_, dtype=np.float64)
        steps = int(np.max(est.n_iter_))
        return self.get_weights(), int(self.X.shape[0]), {"local_steps": steps}


__all__ = ["LogisticRegressionClient", "SGDClient"]
