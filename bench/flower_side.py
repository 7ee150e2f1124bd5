"""The Flower side of ``bench/federated.py``: the same digits client under Flower's simulation.

Runs in Flower's own environment (``flwr[simulation]``, which has no mloop)::

    PYTHONPATH=bench /path/to/flower-venv/bin/python bench/flower_side.py [--rounds 20]

``bench/federated_client.py``'s ``DigitsClient`` is wrapped in a small adapter to Flower's
``NumPyClient``; Flower's ``run_simulation`` (Ray backend) runs ``--clients`` virtual
clients, FedAvg samples all of them every round (weighted by examples, as mloop's), the
global model starts at the same zeros and is evaluated centrally on the held-out 20% after
every round (no federated evaluation, ``fraction_evaluate=0``). The last line printed is
JSON: wall time from before importing Flower to the end, import time, time to the first
round's model, final central accuracy and loss, every round's accuracy, and the peak of
the summed resident (RSS) and proportional (PSS) set sizes of this process and all its
descendants (Ray's GCS, raylet and workers), sampled by a thread with psutil (not with
``--no-memory``, when the caller samples this process tree itself, as bench/federated.py
does, so both sides are measured the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any

T0 = time.perf_counter()

import psutil  # noqa: E402  (T0 is taken before any import that costs time)


class TreeMemory:
    """Samples the summed RSS (every ``interval`` s) and PSS (every ``pss_every`` samples)
    of this process and its descendants in a thread; peaks in MiB."""

    def __init__(self, interval: float = 0.05, pss_every: int = 10,
                 enabled: bool = True) -> None:
        self.interval, self.pss_every, self.enabled = interval, pss_every, enabled
        self.peak_rss = self.peak_pss = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        me = psutil.Process(os.getpid())
        return [me, *me.children(recursive=True)]

    def sample(self, with_pss: bool) -> None:
        """One reading of the tree's RSS (and PSS) sums."""
        rss = pss = 0
        procs = self._tree()
        for p in procs:
            try:
                if with_pss:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                else:
                    rss += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.peak_rss = max(self.peak_rss, rss / 2**20)
        self.peak_pss = max(self.peak_pss, pss / 2**20)
        self.peak_processes = max(self.peak_processes, len(procs))

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.sample(with_pss=i % self.pss_every == 0)
            i += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="the IID partition's seed")
    parser.add_argument("--num-cpus", type=float, default=1.0,
                        help="Ray CPUs per virtual client (Flower's default is 2)")
    parser.add_argument("--no-memory", action="store_true",
                        help="do not sample memory here (the caller samples this tree)")
    args = parser.parse_args()

    with TreeMemory(enabled=not args.no_memory) as memory:
        import numpy as np
        from flwr.client import ClientApp, NumPyClient
        from flwr.common import Context, ndarrays_to_parameters
        from flwr.server import ServerApp, ServerAppComponents, ServerConfig
        from flwr.server.strategy import FedAvg
        from flwr.simulation import run_simulation

        import federated_client as fc

        import_s = time.perf_counter() - T0
        fc.load_digits_split()  # both sides load the data before timing rounds
        data_s = time.perf_counter() - T0 - import_s

        class FlowerAdapter(NumPyClient):
            """Flower's NumPyClient calls on a bench client (numpy in, numpy out)."""

            def __init__(self, inner: fc.DigitsClient) -> None:
                self.inner = inner

            def get_parameters(self, config: Any) -> Any:
                return self.inner.get_weights()

            def fit(self, parameters: Any, config: Any) -> Any:
                return self.inner.fit(parameters, dict(config))

            def evaluate(self, parameters: Any, config: Any) -> Any:
                return self.inner.evaluate(parameters, dict(config))

        def client_fn(context: Context) -> Any:
            cid = int(context.node_config["partition-id"])
            return FlowerAdapter(fc.client_fn(cid, args.clients, args.seed)).to_client()

        history: list[tuple[int, float, float, float]] = []

        def central(server_round: int, parameters: Any, config: Any) -> Any:
            loss, acc = fc.central_evaluate([np.asarray(p) for p in parameters])
            history.append((int(server_round), loss, acc, time.perf_counter() - T0))
            return loss, {"accuracy": acc}

        def server_fn(context: Context) -> ServerAppComponents:
            strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0,
                              min_fit_clients=args.clients, min_evaluate_clients=0,
                              min_available_clients=args.clients,
                              initial_parameters=ndarrays_to_parameters(fc.initial_weights()),
                              evaluate_fn=central,
                              on_fit_config_fn=lambda rnd: {"round": rnd})
            return ServerAppComponents(strategy=strategy,
                                       config=ServerConfig(num_rounds=args.rounds))

        run_simulation(server_app=ServerApp(server_fn=server_fn),
                       client_app=ClientApp(client_fn=client_fn),
                       num_supernodes=args.clients,
                       backend_config={"client_resources": {"num_cpus": args.num_cpus,
                                                            "num_gpus": 0.0}})
        wall_s = time.perf_counter() - T0
        if memory.enabled:
            memory.sample(with_pss=True)

    rounds = [h for h in history if h[0] >= 1]
    if len(rounds) != args.rounds:
        raise SystemExit(f"Flower ran {len(rounds)} of {args.rounds} rounds")
    print(json.dumps({
        "tool": "flower", "wall_s": round(wall_s, 3), "import_s": round(import_s, 3),
        "data_s": round(data_s, 3), "first_round_s": round(rounds[0][3], 3),
        "final_accuracy": rounds[-1][2], "final_loss": rounds[-1][1],
        "accuracy_per_round": [h[2] for h in rounds],
        "peak_rss_sum_mb": round(memory.peak_rss, 1),
        "peak_pss_sum_mb": round(memory.peak_pss, 1),
        "peak_processes": memory.peak_processes,
        "clients": args.clients, "rounds": args.rounds, "num_cpus_per_client": args.num_cpus,
    }))


if __name__ == "__main__":
    main()
