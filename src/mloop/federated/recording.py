"""A federation as a tracked run: params, per-round metrics, clients, checkpoints, the
model, lineage — and resuming from the last checkpointed round.

What is recorded of a client is what it chose to tell (``Client.properties()``: sample
count, label histogram), never its data. Lineage: ``runs:/<run> --trained-on-->
clients:/<federation>/<client>`` for every client whose update counted.

After each round the global weights and the strategy's state (server optimizer moments,
the privacy accountant) go to the object store, and a write-once record
``fl/<run id>/<round>.json`` names them: a server killed mid-training resumes from the
last completed round with ``resume=<run id>`` (``mloop fl server --resume``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.ids import short_id
from mloop.core.redact import get_logger
from mloop.errors import NotFoundError
from mloop.federated import arrays
from mloop.federated.types import Weights

if TYPE_CHECKING:
    from mloop.federated.coordinator import Coordinator, RoundRecord, Settings
    from mloop.federated.simulation import History, Tracking
    from mloop.federated.strategy import Strategy
    from mloop.project import Project
    from mloop.tracking.active import ActiveRun

log = get_logger(__name__)

CHECKPOINTS = "fl"


def pack_state(state: dict[str, Any]) -> bytes:
    """A strategy's state as one message: lists of arrays as arrays, the rest as JSON."""
    flat: list[np.ndarray] = []
    layout: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            layout[key] = {"arrays": [len(flat), len(value)]}
            flat.extend(value)
        elif isinstance(value, np.ndarray):
            layout[key] = {"array": len(flat)}
            flat.append(value)
        else:
            layout[key] = {"value": value}
    return arrays.encode(flat, {"layout": layout})


def unpack_state(data: bytes) -> dict[str, Any]:
    """What :func:`pack_state` packed."""
    flat, meta = arrays.decode(data)
    state: dict[str, Any] = {}
    for key, spec in meta.get("layout", {}).items():
        if "arrays" in spec:
            start, n = spec["arrays"]
            state[key] = flat[start:start + n]
        elif "array" in spec:
            state[key] = flat[spec["array"]]
        else:
            state[key] = spec["value"]
    return state


class Checkpoint:
    """The last completed round of a run: its weights and the strategy's state."""

    def __init__(self, round_: int, weights: Weights, state: dict[str, Any]) -> None:
        self.round, self.weights, self.state = round_, weights, state

    @classmethod
    def latest(cls, project: Project, run_id: str) -> Checkpoint:
        store = project.objects
        names = store.list_records(f"{CHECKPOINTS}/{run_id}")
        if not names:
            raise NotFoundError(f"run {run_id} has no federated checkpoint to resume from "
                                "(no round of it completed)")
        raw = store.get_record(f"{CHECKPOINTS}/{run_id}/{names[-1]}")
        assert raw is not None
        info = json.loads(raw)
        weights, _ = arrays.decode(store.get_bytes(info["weights"]))
        state = unpack_state(store.get_bytes(info["state"])) if info.get("state") else {}
        return cls(int(info["round"]), weights, state)

    @staticmethod
    def save(project: Project, run_id: str, round_: int, weights: Weights, *,
             state: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
        """Checkpoint round ``round_``: the weights and state as blobs, and a record naming
        them with the round's ``summary`` (who took part, the clients' properties)."""
        store = project.objects
        record = {"round": round_, "weights": store.put_bytes(arrays.encode(weights)),
                  "state": store.put_bytes(pack_state(state)) if state else None,
                  "summary": summary or {}}
        store.put_record(f"{CHECKPOINTS}/{run_id}/{round_:08d}.json",
                         json.dumps(record).encode())

    @staticmethod
    def summaries(project: Project, run_id: str) -> list[dict[str, Any]]:
        """Every checkpointed round's summary, in order (before and after a resume)."""
        store = project.objects
        out = []
        for name in store.list_records(f"{CHECKPOINTS}/{run_id}"):
            raw = store.get_record(f"{CHECKPOINTS}/{run_id}/{name}")
            if raw is not None:
                out.append(json.loads(raw).get("summary") or {})
        return out


class RunRecorder:
    """The observer that records a federation into one run (see the module docstring)."""

    def __init__(self, project: Project, run: ActiveRun, tracking: Tracking,
                 start_round: int) -> None:
        self.project, self.run, self.tracking = project, run, tracking
        self.start_round = start_round
        self.federation = tracking.federation or short_id(run.id)

    @classmethod
    def open(cls, project: Project | None, tracking: Tracking, strategy: Strategy
             ) -> tuple[RunRecorder, Checkpoint | None]:
        """Start the run (or resume ``tracking.resume`` from its last checkpoint)."""
        from mloop.project import current_project
        from mloop.tracking.tracker import tracker_for

        project = project if project is not None else current_project()
        tracker = tracker_for(project)
        checkpoint = None
        if tracking.resume:
            checkpoint = Checkpoint.latest(project, tracking.resume)
            strategy.restore(checkpoint.state)
            run = tracker.start_run(run_id=tracking.resume)
            log.info("resuming run %s after round %d", run.id, checkpoint.round)
        else:
            run = tracker.start_run(tracking.experiment, tracking.run_name,
                                    {"mloop.kind": "federated"})
        start = checkpoint.round + 1 if checkpoint else 1
        return cls(project, run, tracking, start), checkpoint

    # -- the observer ------------------------------------------------------------------
    def started(self, coordinator: Coordinator) -> None:
        if self.start_round > 1:
            return
        params = dict(coordinator.strategy.params())
        params.update(_settings_params(coordinator.settings))
        self.run.log_params({k: v for k, v in params.items() if v is not None})
        self.run.set_tag("fl.federation", self.federation)
        if coordinator.initial_central:
            self.run.log_metrics({f"central_{k}": v
                                  for k, v in coordinator.initial_central.items()}, step=0)

    def round_done(self, record: RoundRecord, weights: Weights, coordinator: Coordinator
                   ) -> None:
        self.run.log_metrics(record.metrics(), step=record.round)
        summary = {"round": _round_json(record),
                   "clients": {name: coordinator.properties.get(name, {})
                               for name in record.answered}}
        Checkpoint.save(self.project, self.run.id, record.round, weights,
                        state=coordinator.strategy.state(), summary=summary)

    # -- the end -----------------------------------------------------------------------
    def finish(self, coordinator: Coordinator, history: History) -> None:
        """Log the clients, the rounds, the weights and the model; end the run."""
        from mloop.lineage import add_edge
        from mloop.registry.models import log_model

        run = self.run
        # the rounds before a resume too: every checkpoint keeps its round's summary
        summaries = Checkpoint.summaries(self.project, run.id)
        rounds = [s["round"] for s in summaries if "round" in s]
        clients: dict[str, Any] = {}
        for s in summaries:
            clients.update(s.get("clients") or {})
        clients.update({n: p for n, p in coordinator.properties.items() if n in clients})
        counted = sorted({name for r in rounds for name in r["answered"]})
        run.log_dict(dict(sorted(clients.items())), "federation/clients.json")
        run.log_dict(rounds, "federation/rounds.json")
        tags: dict[str, Any] = {"fl.clients": len(clients), "fl.rounds": len(rounds)}
        if history.stopped:
            tags["fl.stopped"] = history.stopped[:500]
        run.set_tags(tags)
        _log_bytes(run, arrays.encode(history.weights), "federation/weights.npz")
        for name in counted:
            add_edge(self.project, f"runs:/{run.id}",
                     f"clients:/{self.federation}/{name}", "trained-on")
        if self.tracking.model_fn is not None:
            model = self.tracking.model_fn(history.weights)
            example = self.tracking.input_example
            features = getattr(model, "n_features_in_", None)
            if example is None and isinstance(features, int):  # a signature for sklearn
                example = np.zeros((1, features))
            info = log_model(self.project, run.id, model, "model", input_example=example,
                             registered_name=self.tracking.register_as)
            if info.registered is not None:
                history.model_version = info.registered.version
        history.run_id = run.id
        run.end()

    def fail(self, exc: BaseException) -> None:
        """End the run as failed (its checkpoints stay: resume it with its id)."""
        from mloop.tracking.active import status_for

        self.run.end(status_for(type(exc), exc))


def _settings_params(settings: Settings) -> dict[str, Any]:
    return {"rounds": settings.rounds, "round_timeout": settings.round_timeout,
            "secure_aggregation": settings.secure is not None,
            "float32": settings.float32, "seed": settings.seed}


def _round_json(record: RoundRecord) -> dict[str, Any]:
    return {"round": record.round, "sampled": record.fit_clients,
            "answered": record.answered,
            "failures": [{"client": f.client, "reason": f.reason} for f in record.failures],
            "metrics": record.metrics()}


def _log_bytes(run: ActiveRun, data: bytes, artifact_file: str) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="mloop-fl-") as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_bytes(data)
        run.log_artifact(path, str(Path(artifact_file).parent))


__all__ = ["Checkpoint", "RunRecorder", "pack_state", "unpack_state"]
