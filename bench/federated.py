"""Federated learning (issue 19): mloop's ``fl.simulate`` against Flower's simulation.

(1) **The headline.** scikit-learn's digits (X/16, stratified 80/20 split, random_state 0)
    cut IID over 10 clients; softmax regression (64×10 weights + 10 biases) trained by
    bench/federated_client.py's ``DigitsClient`` (local minibatch SGD: lr 0.3, 1 epoch,
    batch 10, L2 1e-4); FedAvg over every client each round, 20 rounds, central
    evaluation on the held-out 20% after every round, no federated evaluation. Each side
    runs in a fresh subprocess: mloop's ``fl.simulate(mode="process")`` tracked (the
    default, into a fresh project made by ``mloop.init``) and untracked (``track=False``),
    and Flower's ``run_simulation`` (Ray backend) through bench/flower_side.py in Flower's
    own environment. Each side reports its wall time from before its framework's import to
    the end (loading the data, which both do the same way, included), the time to the first
    round's model and the final accuracy. Each side then runs a second time while this
    script samples the peak summed PSS and RSS of the subprocess and all its descendants
    with psutil from a thread, about every 20 ms (less often when one sample costs more
    than a fifth of that: reading PSS walks every page table, so sampling the timed run
    itself would slow it). The sides alternate, ``--repeat`` times each (default 3);
    medians are printed with the goals: ≥ 10× faster than Flower, ≤ 300 MB PSS and under
    half of Flower's summed RSS, final accuracy equal to 4 decimals. The wall time is also
    shown without the data load (the same scikit-learn code on both sides, ~1.5 s here).
(2) Rounds to 90% central accuracy: IID (``fl.iid``) vs Dirichlet α=0.5 (``fl.dirichlet``).
(3) Accuracy after the rounds with 2 of 10 clients sending −10× their update (global −
    10·(new − global)) under FedAvg, FedMedian, FedTrimmedAvg(beta=0.2), Krum(f=2).
(4) SecAgg's overhead: ms per round with ``secure=True`` vs plain, alternating runs.
(5) DP-FedAvg (central noise, clip norm 1.0, δ = 1e-5): ε after the rounds and the final
    accuracy for noise multipliers 0.3, 1 and 3.
(2)–(5) run from this process with ``mode="process"`` and ``track=False``.

Flower runs with ``$FLOWER_PYTHON``, else /work/flvenv/bin/python; make such a Python with
``python -m venv /path && /path/bin/pip install 'flwr[simulation]' scikit-learn psutil``.

Usage: python bench/federated.py [--smoke] [--no-peer] [--repeat 3] [--clients 10]
                                 [--rounds 20]
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # the mloop side's clock: before any import that costs time

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import federated_client as fc  # noqa: E402  (bench/, the script's own folder)

HERE = Path(__file__).resolve().parent
DEFAULT_FLOWER = "/work/flvenv/bin/python"
FLOWER_HOWTO = ("python -m venv /path/to/flvenv && /path/to/flvenv/bin/pip install "
                "'flwr[simulation]' scikit-learn psutil; then FLOWER_PYTHON=/path/to/flvenv/"
                "bin/python")
BOOST = 10.0        # (3): a malicious client sends global − BOOST·(new − global)
CLIP_NORM = 1.0     # (5): client updates' L2 norms run ~2 (round 1) down to ~0.4 (round 20)
DP_DELTA = 1e-5
GOAL_SPEED, GOAL_PSS_MB, TARGET_ACCURACY = 10.0, 300.0, 0.90


# ── measuring a process tree ───────────────────────────────────────────────────────────
class TreeSampler:
    """Peak summed RSS and PSS (MiB) of process ``pid`` and all its descendants, sampled
    by a thread every ``interval`` s — stretched to 5× one sample's cost when a sample is
    slow (many processes), so the sampler takes at most ~20% of a core. The process list
    is refreshed every ``refresh`` samples; without ``memory`` only the list is kept (to
    wait for every process to exit)."""

    def __init__(self, pid: int, interval: float = 0.02, refresh: int = 1, *,
                 memory: bool = True) -> None:
        import psutil

        self.psutil, self.root = psutil, psutil.Process(pid)
        self.interval, self.refresh, self.memory = interval, refresh, memory
        self.peak_rss = self.peak_pss = 0.0
        self.peak_processes = self.samples = 0
        self.seen: dict[int, Any] = {}
        self._started = self._ended = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-sampler")

    def _tree(self) -> list[Any]:
        try:
            kids = self.root.children(recursive=True)
        except self.psutil.NoSuchProcess:
            return []
        return [self.root, *(self.seen.setdefault(k.pid, k) for k in kids)]

    def sample(self, procs: list[Any]) -> None:
        """One reading: the sums of RSS and PSS over ``procs`` (those alive)."""
        rss = pss = alive = 0
        gone = (self.psutil.NoSuchProcess, self.psutil.ZombieProcess, self.psutil.AccessDenied)
        for p in procs:
            try:
                info = p.memory_full_info()
            except gone:
                continue
            rss, pss, alive = rss + info.rss, pss + info.pss, alive + 1
        self.peak_rss = max(self.peak_rss, rss / 2**20)
        self.peak_pss = max(self.peak_pss, pss / 2**20)
        self.peak_processes = max(self.peak_processes, alive)
        self.samples += 1

    def _run(self) -> None:
        procs: list[Any] = []
        i = 0
        while not self._stop.is_set():
            start = time.perf_counter()
            if i % self.refresh == 0:
                procs = self._tree()
            if self.memory:
                self.sample(procs)
            cost = time.perf_counter() - start
            i += 1
            self._stop.wait(max(self.interval - cost, 4.0 * cost))

    @property
    def period_ms(self) -> float:
        """The mean time between two samples, in ms."""
        return (self._ended - self._started) / max(self.samples, 1) * 1000

    def wait_gone(self, timeout: float = 60.0) -> int:
        """Wait until every descendant seen has exited (Ray's may outlive their parent):
        how many are still alive after ``timeout`` s."""
        _, alive = self.psutil.wait_procs(list(self.seen.values()), timeout=timeout)
        return len(alive)

    def __enter__(self) -> TreeSampler:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._ended = time.perf_counter()


def run_side(label: str, cmd: list[str], cwd: Path, env: dict[str, str], *,
             sample: bool) -> dict[str, Any]:
    """Run one side's subprocess: its JSON (last stdout line), and with ``sample`` the
    peaks a :class:`TreeSampler` read from it (the timed runs go unsampled: sampling a
    tree of large processes costs a fifth of a core, which would slow the side measured)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # unsampled: only the process list, every 0.25 s, to wait for all of it to exit
    sampler = TreeSampler(proc.pid) if sample else TreeSampler(proc.pid, 0.25, 1, memory=False)
    with sampler:
        out, err = proc.communicate(timeout=1800)
    sampler.wait_gone()
    if proc.returncode != 0 or not out.strip():
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["framework_s"] = result["wall_s"] - result["data_s"]
    if sample:
        result.update(pss_mb=sampler.peak_pss, rss_mb=sampler.peak_rss,
                      processes=sampler.peak_processes, sample_ms=sampler.period_ms)
    return result


# ── the mloop side (run in a fresh subprocess: --mloop-side) ───────────────────────────
def all_clients(n: int) -> dict[str, Any]:
    """Sampling for every client each round and no federated evaluation (as Flower's side)."""
    return {"fraction_fit": 1.0, "fraction_evaluate": 0.0, "min_fit_clients": n,
            "min_evaluate_clients": 0, "min_available_clients": n}


def mloop_side(args: argparse.Namespace) -> dict[str, Any]:
    """The headline federation under ``fl.simulate``; times from :data:`T0`."""
    import mloop.federated as fl

    import_s = time.perf_counter() - T0
    fc.load_digits_split()  # both sides load the data before the rounds, inside the clock
    data_s = time.perf_counter() - T0 - import_s
    reached: dict[int, float] = {}

    def central(server_round: int, weights: list[np.ndarray]) -> tuple[float, dict[str, Any]]:
        loss, acc = fc.central_evaluate(weights)
        reached[server_round] = time.perf_counter() - T0
        return loss, {"accuracy": acc}

    history = fl.simulate(functools.partial(fc.client_fn, n_clients=args.clients, seed=0),
                          n_clients=args.clients, rounds=args.rounds,
                          strategy=fl.FedAvg(**all_clients(args.clients)),
                          evaluate_fn=central, initial_weights=fc.initial_weights(),
                          mode=args.mode, track=args.track, experiment="bench-federated")
    wall_s = time.perf_counter() - T0
    accuracy = [a for _, a in history.metric("central_accuracy")]
    if len(accuracy) != args.rounds:
        raise SystemExit(f"mloop ran {len(accuracy)} of {args.rounds} rounds")
    return {"tool": "mloop", "wall_s": wall_s, "import_s": import_s, "data_s": data_s,
            "first_round_s": reached[1], "final_accuracy": accuracy[-1],
            "final_loss": history.final["central_loss"], "accuracy_per_round": accuracy,
            "run_id": history.run_id, "tracked": args.track}


# ── (1) the headline ─────────────────────────────────────────────────────────────────
def flower_python(no_peer: bool) -> str | None:
    """Flower's interpreter, or None (and why) when it is not to be run."""
    if no_peer:
        print("Flower: not run (--no-peer)")
        return None
    python = os.environ.get("FLOWER_PYTHON", DEFAULT_FLOWER)
    if not Path(python).exists():
        print(f"Flower: no Python at {python}, so no ratios. Make one: {FLOWER_HOWTO}")
        return None
    return python


def headline_runs(args: argparse.Namespace, flower: str | None,
                  tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """``args.repeat`` runs of each side, alternating (F T U, U T F, …)."""
    import mloop

    src = str(Path(mloop.__file__).resolve().parents[1])  # the mloop this script runs
    mloop_env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(HERE)])}
    flower_env = {**os.environ, "PYTHONPATH": str(HERE)}  # no mloop in Flower's world
    sizes = ["--clients", str(args.clients), "--rounds", str(args.rounds)]
    mine = [sys.executable, str(HERE / "federated.py"), "--mloop-side", *sizes,
            "--mode", args.mode]
    sides: dict[str, tuple[list[str], dict[str, str]]] = {
        "tracked": ([*mine, "--track"], mloop_env), "untracked": (mine, mloop_env)}
    if flower is not None:
        sides["flower"] = ([flower, str(HERE / "flower_side.py"), *sizes, "--no-memory"],
                           flower_env)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for rep in range(args.repeat):
        order = list(sides) if rep % 2 else list(reversed(sides))
        for name in order:
            cmd, env = sides[name]
            runs = []
            for sample in (False, True):  # a timed run, then a run whose memory is sampled
                cwd = tmp
                if name == "tracked":
                    cwd = tmp / f"project-{rep}-{int(sample)}"
                    mloop.init(cwd)  # a fresh project for each tracked run
                runs.append(run_side(name, cmd, cwd, env, sample=sample))
            timed, sampled = runs
            timed.update({k: sampled[k] for k in ("pss_mb", "rss_mb", "processes",
                                                  "sample_ms")},
                         sampled_wall_s=sampled["wall_s"],
                         sampled_accuracy=sampled["accuracy_per_round"])
            results[name].append(timed)
            print(f"    run {rep + 1} {name:<9} wall {timed['wall_s']:6.2f} s  accuracy "
                  f"{timed['final_accuracy']:.4f} | sampled run: wall {sampled['wall_s']:6.2f} "
                  f"s  peak PSS {sampled['pss_mb']:7.1f} MB  RSS {sampled['rss_mb']:7.1f} MB",
                  flush=True)
    return results


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_headline(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace
                   ) -> None:
    """The medians, the ratios and the goals."""
    labels = {"tracked": "mloop, tracked", "untracked": "mloop, untracked",
              "flower": "Flower (Ray)"}
    print(f"    {'median of ' + str(args.repeat):<18} {'wall':>8} {'1st round':>10} "
          f"{'import':>7} {'data':>6} {'peak PSS':>10} {'peak RSS':>10} {'procs':>5} "
          f"{'sample':>7}  final accuracy")
    for name, runs in results.items():
        print(f"    {labels[name]:<18} {median(runs, 'wall_s'):6.2f} s "
              f"{median(runs, 'first_round_s'):8.2f} s {median(runs, 'import_s'):5.2f} s "
              f"{median(runs, 'data_s'):4.2f} s {median(runs, 'pss_mb'):7.1f} MB "
              f"{median(runs, 'rss_mb'):7.1f} MB {max(r['processes'] for r in runs):5d} "
              f"{median(runs, 'sample_ms'):4.0f} ms  {runs[-1]['final_accuracy']:.4f}")
    ours = {k: v for k, v in results.items() if k != "flower"}
    for name, runs in ours.items():
        pss = median(runs, "pss_mb")
        print(f"    peak PSS, {labels[name]}: {pss:.1f} MB (goal ≤ {GOAL_PSS_MB:.0f} MB: "
              f"{verdict(pss <= GOAL_PSS_MB)})")
    flower = results.get("flower")
    if not flower:
        print("    Flower / mloop: not measured (no Flower)")
        return
    f_wall, f_first = median(flower, "wall_s"), median(flower, "first_round_s")
    f_rss, f_pss = median(flower, "rss_mb"), median(flower, "pss_mb")
    f_bare = median(flower, "framework_s")
    for name, runs in ours.items():
        wall, pss, rss = (median(runs, k) for k in ("wall_s", "pss_mb", "rss_mb"))
        bare = f_bare / median(runs, "framework_s")
        print(f"    Flower / {labels[name]}: wall {f_wall / wall:.1f}x (goal ≥ "
              f"{GOAL_SPEED:.0f}x: {verdict(f_wall / wall >= GOAL_SPEED)}), first round "
              f"{f_first / median(runs, 'first_round_s'):.1f}x, peak PSS {f_pss / pss:.1f}x, "
              f"peak summed RSS {f_rss / rss:.1f}x")
        print(f"      wall without the data load (the same scikit-learn code on both sides): "
              f"Flower {f_bare:.2f} s / mloop {median(runs, 'framework_s'):.2f} s = "
              f"{bare:.1f}x ({verdict(bare >= GOAL_SPEED)})")
        print(f"      mloop PSS {pss:.1f} MB vs half of Flower's summed RSS {f_rss / 2:.1f} MB:"
              f" {verdict(pss < f_rss / 2)} (and summed RSS {rss:.1f} MB: "
              f"{verdict(rss < f_rss / 2)})")
    accuracy_check(results)


def accuracy_check(results: dict[str, list[dict[str, Any]]]) -> None:
    """Every run's final accuracy equal to 4 decimals, and the largest per-round gap."""
    runs = [r for name in results for r in results[name]]
    curves = np.array([c for r in runs for c in (r["accuracy_per_round"],
                                                 r["sampled_accuracy"])])
    finals = sorted({round(float(a), 4) for a in curves[:, -1]})
    gap = float(np.abs(curves - curves[0]).max())
    by_side = ", ".join(f"{name} {results[name][-1]['final_accuracy']:.6f}" for name in results)
    print(f"    final accuracy identical to 4 decimals across all {len(curves)} runs: "
          f"{verdict(len(finals) == 1)} ({by_side}; largest per-round difference {gap:.2g})")


# ── (2)–(5): quality, robustness, privacy, run from this process ───────────────────────
def simulate(client_fn: Any, args: argparse.Namespace, strategy: Any, rounds: int,
             **kw: Any) -> Any:
    """One untracked federation of ``args.clients`` with central evaluation."""
    import mloop.federated as fl

    def central(_: int, weights: list[np.ndarray]) -> tuple[float, dict[str, Any]]:
        loss, acc = fc.central_evaluate(weights)
        return loss, {"accuracy": acc}

    return fl.simulate(client_fn, n_clients=args.clients, rounds=rounds, strategy=strategy,
                       evaluate_fn=central, initial_weights=fc.initial_weights(),
                       mode=args.mode, track=False, **kw)


def accuracies(history: Any) -> list[float]:
    return [a for _, a in history.metric("central_accuracy")]


def rounds_to_target(args: argparse.Namespace, max_rounds: int) -> None:
    """(2) rounds until central accuracy first reaches 90%, IID vs Dirichlet(0.5)."""
    import mloop.federated as fl

    _, y, _, _ = fc.load_digits_split()
    n = args.clients
    splits = {"IID (fl.iid)": fl.iid(len(y), n, seed=0),
              "Dirichlet α=0.5 (fl.dirichlet)": fl.dirichlet(y, n, alpha=0.5, seed=0)}
    print(f"\n(2) rounds to {TARGET_ACCURACY:.0%} central accuracy, {n} clients, FedAvg "
          f"(at most {max_rounds} rounds)")
    for label, parts in splits.items():
        acc = accuracies(simulate(functools.partial(fc.indexed_client, parts=parts), args,
                                  fl.FedAvg(**all_clients(n)), max_rounds))
        hit = next((i + 1 for i, a in enumerate(acc) if a >= TARGET_ACCURACY), None)
        held = [len(np.unique(y[p])) for p in parts]
        sizes = [len(p) for p in parts]
        print(f"    {label:<31} {'round ' + str(hit) if hit else 'not reached':>11}  "
              f"(accuracy at round {len(acc)}: {acc[-1]:.4f}; clients hold {min(sizes)}–"
              f"{max(sizes)} rows of {min(held)}–{max(held)} classes)")


class Flipped(fc.DigitsClient):
    """A malicious client: trains as usual, then sends global − BOOST·(new − global)."""

    def fit(self, weights: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        new, n, metrics = super().fit(weights, config)
        return [w - BOOST * (v - w) for w, v in zip(weights, new, strict=True)], n, metrics


def attacked_client(cid: int, n_clients: int, attackers: int) -> fc.DigitsClient:
    """Client ``cid`` of the IID federation; the first ``attackers`` are :class:`Flipped`."""
    honest = fc.client_fn(cid, n_clients)
    return Flipped(cid, honest.X, honest.y) if cid < attackers else honest


def byzantine(args: argparse.Namespace, attackers: int) -> None:
    """(3) final accuracy with ``attackers`` clients sending −BOOST× updates."""
    import mloop.federated as fl

    n = args.clients
    f = min(attackers, (n - 3) // 2)  # Krum needs n ≥ 2f + 3
    every = all_clients(n)
    strategies = {"FedAvg, no attack": fl.FedAvg(**every), "FedAvg": fl.FedAvg(**every),
                  "FedMedian": fl.FedMedian(**every),
                  "FedTrimmedAvg(beta=0.2)": fl.FedTrimmedAvg(beta=0.2, **every),
                  f"Krum(num_malicious={f})": fl.Krum(num_malicious=f, **every)}
    print(f"\n(3) {attackers} of {n} clients send −{BOOST:g}× their update "
          f"(global − {BOOST:g}·(new − global)); central accuracy after {args.rounds} rounds")
    for label, strategy in strategies.items():
        bad = 0 if label.endswith("no attack") else attackers
        client_fn = functools.partial(attacked_client, n_clients=n, attackers=bad)
        acc = accuracies(simulate(client_fn, args, strategy, args.rounds))
        print(f"    {label:<26} accuracy {acc[-1]:.4f}  (best round {max(acc):.4f})")


def secagg_overhead(args: argparse.Namespace) -> None:
    """(4) ms per round, SecAgg vs plain FedAvg, alternating runs (medians)."""
    import mloop.federated as fl

    n = args.clients
    client_fn = functools.partial(fc.client_fn, n_clients=n)
    per_round: dict[bool, list[float]] = {False: [], True: []}
    walls: dict[bool, list[float]] = {False: [], True: []}
    finals: dict[bool, Any] = {}
    for rep in range(args.repeat):
        for secure in ((False, True) if rep % 2 == 0 else (True, False)):
            start = time.perf_counter()
            history = simulate(client_fn, args, fl.FedAvg(**all_clients(n)), args.rounds,
                               secure=secure)
            walls[secure].append(time.perf_counter() - start)
            per_round[secure].append(statistics.median(r.seconds for r in history.rounds))
            finals[secure] = history
    plain, masked = (statistics.median(per_round[s]) * 1000 for s in (False, True))
    gap = max(float(np.abs(a - b).max()) for a, b in
              zip(finals[False].weights, finals[True].weights, strict=True))
    print(f"\n(4) secure aggregation, {n} clients × {args.rounds} rounds, FedAvg; median of "
          f"{args.repeat} alternating runs of the median round")
    print(f"    plain FedAvg  {plain:7.1f} ms/round   (whole simulate() "
          f"{statistics.median(walls[False]):.2f} s)")
    print(f"    SecAgg        {masked:7.1f} ms/round   (whole simulate() "
          f"{statistics.median(walls[True]):.2f} s)")
    print(f"    SecAgg overhead {masked - plain:+.1f} ms/round, SecAgg / plain "
          f"{masked / plain:.2f}x; final accuracy plain {accuracies(finals[False])[-1]:.4f}, "
          f"SecAgg {accuracies(finals[True])[-1]:.4f}, largest weight difference {gap:.2g}")


def privacy(args: argparse.Namespace, multipliers: tuple[float, ...]) -> None:
    """(5) ε (δ = 1e-5) and final accuracy of DP-FedAvg for each noise multiplier."""
    import mloop.federated as fl
    from mloop.federated.privacy import DPFedAvg

    n = args.clients
    client_fn = functools.partial(fc.client_fn, n_clients=n)
    print(f"\n(5) DP-FedAvg, central noise, clip norm {CLIP_NORM:g}, every client each round "
          f"(q = 1), δ = {DP_DELTA:g}, {args.rounds} rounds")
    for z in multipliers:
        strategy = DPFedAvg(fl.FedAvg(**all_clients(n)), noise_multiplier=z, num_clients=n,
                            clip_norm=CLIP_NORM, delta=DP_DELTA, seed=0)
        history = simulate(client_fn, args, strategy, args.rounds)
        eps = history.final["epsilon"]
        print(f"    noise multiplier {z:<4g} ε {eps:10.3f}   accuracy "
              f"{accuracies(history)[-1]:.4f}   (noise std on the mean update "
              f"{z * CLIP_NORM / n:.3g} per coordinate)")


# ── main ──────────────────────────────────────────────────────────────────────────────
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no Flower (seconds)")
    parser.add_argument("--no-peer", action="store_true", help="skip Flower")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mode", choices=("process", "thread"), default="process")
    parser.add_argument("--mloop-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--track", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.no_peer, args.repeat, args.clients, args.rounds = True, 1, 3, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.mloop_side:
        print(json.dumps(mloop_side(args)))
        return 0
    flower = flower_python(args.no_peer)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} ({os.cpu_count()} CPUs)")
    print(f"\n(1) digits, {args.clients} clients IID, softmax regression (650 parameters), "
          f"FedAvg over every client, {args.rounds} rounds, central evaluation each round; "
          f"mode={args.mode!r}; {args.repeat} alternating runs each")
    with tempfile.TemporaryDirectory(prefix="mloop-bench-fl-") as tmp:
        results = headline_runs(args, flower, Path(tmp))
    print_headline(results, args)
    fc.load_digits_split()
    rounds_to_target(args, max_rounds=args.rounds if args.smoke else 50)
    byzantine(args, attackers=1 if args.smoke else 2)
    secagg_overhead(args)
    privacy(args, (0.3, 1.0, 3.0) if not args.smoke else (1.0,))
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
