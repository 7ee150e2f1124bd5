"""``mloop batch …``: precomputed predictions (score a table, look a key up)."""

from __future__ import annotations

import click

from mloop.cli.render import echo, emit_json, json_option, kv_section
from mloop.core.humanize import iso_ms, plural


@click.group()
def batch() -> None:
    """Precompute: score whole tables with Dask, then look predictions up by key."""


@batch.command("predict")
@click.argument("model")
@click.option("-i", "--input", "source", required=True,
              help="CSV or Parquet file, folder or glob (e.g. 'exports/*.parquet').")
@click.option("-k", "--key", required=True, help="The entity column, e.g. customer_id.")
@click.option("--table", help="Where the predictions go (default: the model's name).")
@click.option("--scheduler", help="A Dask scheduler address, e.g. tcp://host:8786 (default: "
              "this machine's threads).")
@click.option("--full", is_flag=True, help="Score every key again, even those this model "
              "version already scored.")
@click.option("--blocksize", default="64MB", show_default=True,
              help="CSV partition size.")
@click.option("--allow-pickle", is_flag=True, help="Load a model saved as a pickle "
              "(joblib), which runs code when loaded: only models you trust. Without it it "
              "is refused (exit 7).")
@json_option
def predict(model: str, source: str, key: str, table: str | None, scheduler: str | None,
            full: bool, blocksize: str, allow_pickle: bool, as_json: bool) -> None:
    """Score every row of the input with MODEL and store the predictions by key.

    Re-running for the same model version scores only new keys (unless --full); a new
    version writes alongside, and lookups answer from the newest complete batch.
    """
    from dataclasses import asdict

    from mloop.project import current_project
    from mloop.serving.precompute import batch_predict

    result = batch_predict(current_project(), model, source, key, table=table,
                           scheduler=scheduler, full=full, blocksize=blocksize,
                           allow_pickle=allow_pickle or None)
    if as_json:
        emit_json(asdict(result))
        return
    rate = result.rows / result.seconds if result.seconds else 0
    echo(f"{result.table}: {plural(result.rows, 'prediction')} by {result.model} "
         f"({plural(result.skipped, 'key')} already scored) in {result.seconds:.1f} s "
         f"({rate:,.0f} rows/s)")


@batch.command("lookup")
@click.argument("table")
@click.argument("key")
@click.option("--model", help="A model version URI (default: the newest complete batch).")
@json_option
def lookup(table: str, key: str, model: str | None, as_json: bool) -> None:
    """The stored prediction for KEY in TABLE (created_at in ISO 8601, UTC)."""
    from mloop.project import current_project
    from mloop.serving.precompute import lookup as find

    found = find(current_project(), table, key, model=model)
    found["created_at"] = iso_ms(found["created_at"])  # milliseconds in the API, ISO here
    if as_json:
        emit_json(found)
        return
    kv_section(f"{table} / {key}", found, sort=False)
