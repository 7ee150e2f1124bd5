"""``mloop fl server`` and ``mloop fl client``: federated learning across machines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from mloop.cli.render import echo, emit_json
from mloop.errors import ConfigError

TOKEN_ENV = "MLOOP_FL_TOKEN"


@click.group()
def fl() -> None:
    """Federated learning: train where the data lives, send only model updates.

    One `mloop fl server` coordinates the rounds; each site runs `mloop fl client` with
    its own data, connecting out over HTTP(S) (so a site behind NAT takes part). The
    same client code runs in `mloop.federated.simulate` on one machine.
    """


def _kv(values: tuple[str, ...], option: str) -> dict[str, Any]:
    """``key=value`` options as a dict, values parsed as JSON when they parse."""
    import json

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes key=value, not {item[:80]!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _tokens(tokens: tuple[str, ...], token_file: str | None) -> list[str]:
    found = list(tokens)
    if token_file:
        lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        found += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not found and os.environ.get(TOKEN_ENV):
        found = os.environ[TOKEN_ENV].split()
    return found


@fl.command("server")
@click.option("--strategy", default="fedavg", show_default=True,
              help="Aggregation: fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad, "
              "median, trimmed-mean, krum (or a plugin's name).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A strategy parameter, e.g. --param proximal_mu=0.01 (repeatable).")
@click.option("--rounds", type=click.IntRange(1), default=10, show_default=True,
              help="Rounds of training (each: sample, train on the sites, aggregate).")
@click.option("--min-clients", type=click.IntRange(1), default=2, show_default=True,
              help="Clients that must be connected before a round starts, and that train "
              "in each round at least.")
@click.option("--fraction-fit", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Share of the connected clients sampled each round.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="Port to listen on.")
@click.option("--token", "tokens", multiple=True, metavar="[NAME=]SECRET",
              help=f"A client token (NAME=SECRET admits only client NAME); repeatable. Also "
              f"--token-file or ${TOKEN_ENV}.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="File of tokens, one [NAME=]SECRET per line.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate: serve HTTPS (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of --tls-cert.")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False),
              help="Demand client certificates signed by this CA (mutual TLS).")
@click.option("--secure", is_flag=True,
              help="Secure aggregation: the server learns only the sum of the updates.")
@click.option("--dp", "dp", multiple=True, metavar="KEY=VALUE",
              help="Differential privacy (DP-FedAvg), e.g. --dp noise_multiplier=1 --dp "
              "clip_norm=0.5 --dp target_epsilon=8 --dp mode=local.")
@click.option("--initial", metavar="MODULE:FN",
              help="fn() -> initial weights (default: ask the first client).")
@click.option("--evaluate", "evaluate_ref", metavar="MODULE:FN",
              help="fn(round, weights) -> (loss, metrics): central evaluation each round.")
@click.option("--model", "model_ref", metavar="MODULE:FN",
              help="fn(weights) -> model: log the final model (and --register-as it).")
@click.option("--register-as", help="Register the final model under this name.")
@click.option("--experiment", help="Experiment of the run that records the training.")
@click.option("--federation", help="Name of the federation in lineage (clients:/NAME/…).")
@click.option("--resume", metavar="RUN_ID",
              help="Go on from the last completed round of this run (after a crash).")
@click.option("--round-timeout", type=click.FloatRange(0, min_open=True), default=120.0,
              show_default=True, help="Seconds a round waits for the clients' updates.")
@click.option("--wait-timeout", type=click.FloatRange(0, min_open=True), default=300.0,
              show_default=True, help="Seconds to wait for --min-clients to connect.")
@click.option("--float32", is_flag=True, help="Send weights as float32 (half the bytes).")
@click.option("--seed", type=int, default=0, show_default=True, help="Client sampling seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
def server(strategy: str, params: tuple[str, ...], rounds: int, min_clients: int,
           fraction_fit: float, host: str, port: int, tokens: tuple[str, ...],
           token_file: str | None, tls_cert: str | None, tls_key: str | None,
           tls_ca: str | None, secure: bool, dp: tuple[str, ...], initial: str | None,
           evaluate_ref: str | None, model_ref: str | None, register_as: str | None,
           experiment: str | None, federation: str | None, resume: str | None,
           round_timeout: float, wait_timeout: float, float32: bool, seed: int,
           as_json: bool) -> None:
    """Coordinate a federated training: rounds, aggregation, tracking, the final model.

    Clients authenticate with a token (or a client certificate with --tls-ca). Each
    round samples the connected clients, sends them the global weights, aggregates the
    updates that arrive within --round-timeout (a client that fails, times out or sends
    bad weights is recorded, and the round goes on) and logs the round's metrics to a
    run. The weights are checkpointed after every round: after a crash, --resume RUN_ID
    goes on from the last completed round.

    \b
    Examples:
      export MLOOP_FL_TOKEN=...      # not --token: a command line is visible to `ps`
      mloop fl server --rounds 20 --min-clients 8 \\
          --evaluate fed:central_eval --model fed:make_model --register-as churn-fl
      mloop fl server --strategy fedprox --param proximal_mu=0.01 --secure
      mloop fl server --host 0.0.0.0 --tls-cert srv.pem --tls-key srv.key --token-file t.txt
    """
    from mloop.core.refs import load_ref
    from mloop.federated.server import Access, Listen
    from mloop.federated.service import Federation
    from mloop.federated.simulation import Tracking
    from mloop.federated.strategies import make_strategy

    found = _tokens(tokens, token_file)
    if not found and not tls_ca:
        raise ConfigError(f"give the clients' token (--token, --token-file or ${TOKEN_ENV}) or "
                          "demand client certificates with --tls-ca")
    access = Access.parse(found, certificates_only=bool(tls_ca))
    base = {"fraction_fit": fraction_fit, "min_fit_clients": min_clients,
            "min_available_clients": min_clients,
            "min_evaluate_clients": min(min_clients, 2)}
    chosen = make_strategy(strategy, **{**base, **_kv(params, "--param")})
    if dp:
        from mloop.federated.privacy import dp_from_options

        chosen = dp_from_options(chosen, _kv(dp, "--dp"))
    model_fn = load_ref(model_ref, "model function") if model_ref else None
    if register_as and model_fn is None:
        raise ConfigError("--register-as needs --model MODULE:FN, which turns the final "
                          "weights into a model")
    tracking = Tracking(experiment=experiment, register_as=register_as, model_fn=model_fn,
                        federation=federation, resume=resume)
    federation_ = Federation.build(
        chosen, rounds=rounds, n_clients=min_clients,
        evaluate_fn=load_ref(evaluate_ref, "evaluate function") if evaluate_ref else None,
        initial_weights=load_ref(initial, "initial weights function")() if initial else None,
        round_timeout=round_timeout, wait_timeout=wait_timeout, secure=secure, seed=seed,
        float32=float32, tracking=tracking)
    from mloop.core.net import listen_socket
    from mloop.server.main import is_loopback

    if not tls_cert and not is_loopback(host):
        echo(f"warning: serving plain HTTP on {host}: tokens and weights travel in clear; "
             "give --tls-cert/--tls-key", err=True, fg="yellow")
    sock = listen_socket(host, port)
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    echo(f"federation server on {scheme}://{shown}:{sock.getsockname()[1]} — waiting for "
         f"{min_clients} clients; {rounds} rounds of {chosen.name}", err=True)
    history = federation_.serve(access, listen=Listen(host, port, sock=sock, tls_cert=tls_cert,
                                                      tls_key=tls_key, tls_ca=tls_ca))
    _report(history, as_json)


def _report(history: Any, as_json: bool) -> None:
    rows = [{"round": r.round, **r.metrics(),
             "failures": [{"client": f.client, "reason": f.reason} for f in r.failures]}
            for r in history.rounds]
    if as_json:
        emit_json({"run_id": history.run_id, "model_version": history.model_version,
                   "stopped": history.stopped, "rounds": rows})
        return
    for row in rows:
        shown = {k: row[k] for k in ("central_loss", "central_accuracy", "fed_loss",
                                     "clients_answered", "epsilon") if k in row}
        echo(f"round {row['round']}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
        for failure in row["failures"]:
            echo(f"  {failure['client']}: {failure['reason']}", fg="yellow")
    if history.stopped:
        echo(f"stopped early: {history.stopped}", fg="yellow")
    if history.run_id:
        echo(f"run {history.run_id}" + (f"; model version {history.model_version}"
                                        if history.model_version else ""))


@fl.command("client")
@click.option("--server", "server_url", required=True, metavar="URL",
              help="The federation server, e.g. https://fl.example.com:8090.")
@click.option("--client", "client_ref", required=True, metavar="MODULE:FN",
              help="fn() or fn(data) -> mloop.federated.Client, built on this site.")
@click.option("--data", help="Passed to the client function (a path, a table name …).")
@click.option("--name", help="This client's name (default: the name a NAME=SECRET token "
              "binds, else host-pid).")
@click.option("--token", help=f"The federation token (default: ${TOKEN_ENV}).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False),
              help="PEM bundle that signed the server's certificate (self-signed servers).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="This client's certificate, for a server with --tls-ca (with --key).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of --cert.")
@click.option("--retry-for", type=click.FloatRange(0), default=300.0, show_default=True,
              help="Seconds to keep retrying when the server cannot be reached.")
def client(server_url: str, client_ref: str, data: str | None, name: str | None,
           token: str | None, ca: str | None, cert: str | None, key: str | None,
           retry_for: float) -> None:
    """Take part in a federation with this site's data; only updates leave the machine.

    Connects out to the server, trains when a round asks, sends the update (the new
    weights minus the global ones, clipped and noised when the server's privacy settings
    ask) and exits when the training is over. Lost connections are retried for
    --retry-for seconds, so a restarted server finds its clients again.

    \b
    Examples:
      mloop fl client --server https://fl.example.com:8090 --client site:make_client \\
          --data /data/site-a.parquet --token "$MLOOP_FL_TOKEN" --ca ca.pem
    """
    from mloop.core.refs import load_ref
    from mloop.federated.runtime import run_client

    token = token or os.environ.get(TOKEN_ENV) or ""
    if not token and not cert:
        raise ConfigError(f"give the federation's token with --token or ${TOKEN_ENV} (or a "
                          "client certificate with --cert for a server with --tls-ca)")
    make = load_ref(client_ref, "client function")
    built = make(data) if data is not None else make()
    summary = run_client(built, server_url, token=token, name=name, ca=ca, cert=cert, key=key,
                         retry_for=retry_for)
    echo(f"{summary.name}: {summary.fits} fits, {summary.evaluations} evaluations, "
         f"{summary.failures} failed tasks")
