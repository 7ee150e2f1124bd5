"""Tables of the metadata store.

This is the live picture of the schema; the migrations in ``migrations/versions`` are
the frozen history that builds it. ``tests/store/test_migrations.py`` checks that
running every migration yields exactly these tables.

Times are integer Unix milliseconds. A metric's NaN is stored as NULL (SQLite cannot
store a NaN, and one rule on both databases keeps queries identical); ±inf are stored
as themselves.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID = String(32)
DIGEST = String(64)
KEY = String(250)

experiments = Table(
    "experiments", metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
)

environments = Table(
    "environments", metadata,
    Column("id", DIGEST, primary_key=True),  # BLAKE3 of the python, platform and packages
    Column("python", String(100), nullable=False),
    Column("platform", String(200), nullable=False),
    Column("packages", Text, nullable=False),  # sorted "name==version" lines
    Column("created_at", BigInteger, nullable=False),
)


def _owner_columns() -> tuple[Column[object], ...]:
    """Who runs a row's work, and when it last said it was alive (``mloop.core.owner``)."""
    return (Column("owner_host", String(255)),
            Column("owner_pid", BigInteger),
            Column("owner_start", String(100)),  # a token of the process's start time
            Column("heartbeat_at", BigInteger))


runs = Table(
    "runs", metadata,
    Column("id", ID, primary_key=True),
    Column("experiment_id", ID, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("parent_id", ID, ForeignKey("runs.id")),
    Column("user", String(200)),
    Column("environment_id", DIGEST, ForeignKey("environments.id")),
    Column("git_commit", String(64)),
    Column("git_branch", String(250)),
    Column("git_dirty", Boolean),
    Column("git_diff", DIGEST),  # object-store digest of `git diff HEAD` when dirty
    Column("command", Text),
    Column("seed", BigInteger),
    Column("deleted_at", BigInteger),
    *_owner_columns(),
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_id"),
    Index("ix_runs_running", "status", sqlite_where=text("status = 'RUNNING'"),
          postgresql_where=text("status = 'RUNNING'")),
)

# Small rows looked up by primary key: on SQLite these are WITHOUT ROWID tables, so a
# look-up is one B-tree search instead of an index search plus a table fetch.
params = Table(
    "params", metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags", metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

# Every point ever logged: the history behind `metric_history`.
metrics = Table(
    "metrics", metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Double),
    Index(None, "run_id", "key", "step"),
)

# The point with the highest (step, timestamp) per run and key: what search filters and
# sorts on, kept up to date by the metric writer so search never scans the history.
latest_metrics = Table(
    "latest_metrics", metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Double),
    Index(None, "key", "value"),  # covers run_id too: the primary key rides along
    sqlite_with_rowid=False,
)

artifacts = Table(
    "artifacts", metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("digest", DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "digest"),
)

# -- data versioning ----------------------------------------------------------------

datasets = Table(
    "datasets", metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

dataset_versions = Table(
    "dataset_versions", metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("tree", DIGEST, nullable=False),  # object-store digest of the version's tree
    Column("kind", String(16), nullable=False),  # file | folder
    Column("source_path", Text, nullable=False),  # project-relative path it was added from
    Column("size", BigInteger, nullable=False),
    Column("files", BigInteger, nullable=False),
    Column("rows", BigInteger),
    Column("stats", Text),  # JSON: schema and per-column summary of tabular files
    Column("validation", Text),  # JSON: the last validation result
    Column("message", Text),
    Column("user", String(200)),
    Column("command", Text),
    Column("created_at", BigInteger, nullable=False),
)

dataset_tags = Table(
    "dataset_tags", metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

remotes = Table(
    "remotes", metadata,
    Column("name", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# What `data status` compares against: the stat of each file when mloop last hashed it.
stat_cache = Table(
    "stat_cache", metadata,
    Column("path", String(1000), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("digest", DIGEST, nullable=False),
)

# One lineage graph for everything: src --relation--> dst, both mloop URIs.
lineage_edges = Table(
    "lineage_edges", metadata,
    Column("src", String(300), primary_key=True),
    Column("dst", String(300), primary_key=True),
    Column("relation", String(50), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "dst"),
)

# -- model registry -----------------------------------------------------------------

registered_models = Table(
    "registered_models", metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("model_id", ID, ForeignKey("registered_models.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("run_id", ID, index=True),  # the run that logged it (kept if the run is deleted)
    Column("artifact_path", String(1000), nullable=False),  # inside the run's artifacts
    Column("manifest", DIGEST, nullable=False),  # object-store digest of mloop-model.json
    Column("flavor", String(50), nullable=False),
    Column("status", String(20), nullable=False),  # registered | approved | rejected | archived
    Column("description", Text),
    Column("user", String(200)),
    Column("created_at", BigInteger, nullable=False),
)

model_aliases = Table(
    "model_aliases", metadata,
    Column("model_id", ID, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(200), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

model_tags = Table(
    "model_tags", metadata,
    Column("model_id", ID, ForeignKey("registered_models.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# The governance audit log: every registration, transition, alias move and deletion.
model_events = Table(
    "model_events", metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("registered_models.id"), nullable=False, index=True),
    Column("version", BigInteger),
    Column("action", String(50), nullable=False),
    Column("user", String(200)),
    Column("message", Text),
    Column("created_at", BigInteger, nullable=False),
)

# -- evaluation -----------------------------------------------------------------------

# Each test of a model: the decision and the digest of the full JSON report.
evaluations = Table(
    "evaluations", metadata,
    Column("id", ID, primary_key=True),
    Column("model_uri", String(300), nullable=False, index=True),  # models:/n/v or runs:/…
    Column("run_id", ID),  # the active run it was recorded with, if any
    Column("data", Text, nullable=False),
    Column("suite", String(200), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("report", DIGEST, nullable=False),
    Column("user", String(200)),
    Column("created_at", BigInteger, nullable=False),
)

# -- precomputed predictions ----------------------------------------------------------

precompute_batches = Table(
    "precompute_batches", metadata,
    Column("id", ID, primary_key=True),
    Column("table_name", String(200), nullable=False, index=True),
    Column("model_uri", String(300), nullable=False),  # models:/name/version
    Column("source", Text, nullable=False),
    Column("status", String(20), nullable=False),  # running | complete
    Column("rows", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
)

# One prediction per (table, model version, entity key); JSON: {"prediction", "proba"?}.
precomputed = Table(
    "precomputed", metadata,
    Column("table_name", String(200), primary_key=True),
    Column("model_uri", String(300), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("batch_id", ID, nullable=False),
    Column("prediction", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- monitoring -----------------------------------------------------------------------

# Ground truth that arrived after the prediction: one label (JSON) per predicted row.
feedback = Table(
    "feedback", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("row", BigInteger, primary_key=True),
    Column("label", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False, index=True),
    Column("labelled_by", String(200)),  # who gave the label, when known
)

# A rule that fired on a subject (models:/name/version): one open record at a time,
# counted while it keeps firing, resolved when the signal recovers.
alerts = Table(
    "alerts", metadata,
    Column("id", ID, primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("signal", String(200), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("severity", String(20), nullable=False),  # info | warning | critical
    Column("status", String(20), nullable=False),  # open | resolved
    Column("value", Double),
    Column("threshold", Double),
    Column("message", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
    Index("ix_alerts_rule_subject", "rule", "subject", "status"),
    Index("uq_alerts_open", "rule", "subject", unique=True,
          sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
)

# -- pipelines ------------------------------------------------------------------------

# One run of a pipeline: what it was given, how it ended, the tracking run that parents
# its steps' runs (none when every step came from the cache).
pipeline_runs = Table(
    "pipeline_runs", metadata,
    Column("id", ID, primary_key=True),
    Column("pipeline", String(200), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # running | succeeded | failed | killed
    Column("executor", String(20), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("inputs", Text, nullable=False),  # JSON
    Column("trigger", Text),
    Column("run_id", ID),
    Column("error", Text),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    *_owner_columns(),  # the engine's process
    Index("ix_pipeline_runs_running", "status", sqlite_where=text("status = 'running'"),
          postgresql_where=text("status = 'running'")),
)

# Each step of a pipeline run: ran, cached, failed or not run; its outputs (JSON refs).
pipeline_steps = Table(
    "pipeline_steps", metadata,
    Column("pipeline_run_id", ID, primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("cache_key", DIGEST),
    Column("attempts", Integer, nullable=False),
    Column("run_id", ID),
    Column("seconds", Double),
    Column("error", Text),
    Column("log", DIGEST),
    Column("outputs", Text),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
)

# What a step produced for a cache key (code, params, inputs, environment).
pipeline_cache = Table(
    "pipeline_cache", metadata,
    Column("key", DIGEST, primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("outputs", Text, nullable=False),
    Column("run_id", ID),
    Column("created_at", BigInteger, nullable=False),
)

# -- automation -----------------------------------------------------------------------

# Per automated pipeline: the lease that lets one process at a time start it (taken by a
# compare-and-set UPDATE) and the start of the last triggered run (the cooldown's anchor).
automation_state = Table(
    "automation_state", metadata,
    Column("pipeline", String(200), primary_key=True),
    Column("lease", ID),  # the decision holding the pipeline
    Column("lease_holder", String(300)),  # host:pid of its process
    Column("lease_until", BigInteger),
    Column("last_run_at", BigInteger),
    Column("last_skip", Text),  # the events of the last cooldown skip (recorded once)
)

# Every decision of the automation: what fired, what ran, what came of it, and why.
automation_decisions = Table(
    "automation_decisions", metadata,
    Column("id", ID, primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("trigger", Text, nullable=False),
    # running | promoted | rejected | succeeded | failed | blocked | skipped_cooldown
    Column("decision", String(20), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of sentences, the headline first
    Column("fired_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("pipeline_run_id", ID),
    Column("model_uri", String(300)),  # the candidate: runs:/<run>/<path>
    Column("registered", String(300)),  # the version it became: models:/<name>/<version>
    Column("holder", String(300)),
    Index(None, "pipeline", "fired_at"),
    Index(None, "fired_at"),
)

# An event (a cron time, a dataset version, an alert id) that fired: its row is its claim.
automation_events = Table(
    "automation_events", metadata,
    Column("pipeline", String(200), primary_key=True),
    Column("trigger", String(300), primary_key=True),
    Column("event", String(300), primary_key=True),
    Column("decision_id", ID, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- deployments ----------------------------------------------------------------------

# A named endpoint; ``serial`` counts every change to it (a new revision, a step, a
# switch), so replicas poll one integer and writers compare-and-set on it.
deployments = Table(
    "deployments", metadata,
    Column("name", String(200), primary_key=True),
    Column("current_revision", Integer),
    Column("serial", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One traffic configuration: arms (JSON: name, model, source, weight, role), strategy,
# policy (JSON), fallback (JSON) and the runtime state the controller moves (JSON).
deployment_revisions = Table(
    "deployment_revisions", metadata,
    Column("deployment", String(200), ForeignKey("deployments.name"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("strategy", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("arms", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("fallback", Text),
    Column("state", Text, nullable=False),
    Column("rollback_of", Integer),
    Column("rollback_target", Text),  # JSON {revision, model}: what a rollback restores
    Column("created_by", String(200), nullable=False),
    Column("reason", Text),
    Column("created_at", BigInteger, nullable=False),
)

# What happened within a revision, who or what did it, why, and the analysis behind it.
deployment_events = Table(
    "deployment_events", metadata,
    Column("id", ID, primary_key=True),
    Column("deployment", String(200), ForeignKey("deployments.name"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("initiated_by", String(200), nullable=False),
    Column("reason", Text),
    Column("analysis", Text),  # JSON
    Column("created_at", BigInteger, nullable=False),
    Index("ix_deployment_events_deployment_created_at", "deployment", "created_at"),
)

# One controller at a time per deployment: whoever holds an unexpired lease.
deployment_leases = Table(
    "deployment_leases", metadata,
    Column("deployment", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("acquired_at", BigInteger, nullable=False),
)

# The prediction index of deployment traffic, every replica's: one row per predicted row
# and arm (a shadow's answer is a row of its own); ``outcome``: ok, error, fallback, shadow.
deployment_traffic = Table(
    "deployment_traffic", metadata,
    Column("request_id", ID, primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("arm", String(100), primary_key=True),
    Column("deployment", String(200), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("model", String(300), nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("prediction", Text),  # JSON scalar
    Column("latency_ms", Double),
    Column("time_ms", BigInteger, nullable=False),
    Index("ix_deployment_traffic_deployment_revision", "deployment", "revision", "time_ms"),
)

# The prediction log's segments shared through the object store (a store other than
# SQLite: replicas on several hosts), so that monitoring on any host reads every
# replica's predictions; a segment keeps its file name on every host.
prediction_segments = Table(
    "prediction_segments", metadata,
    Column("model", String(200), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("digest", DIGEST, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("written_at", BigInteger, nullable=False),
    Index("ix_prediction_segments_written_at", "written_at"),
)

# -- the team server's identities -------------------------------------------------------

# A bearer token of `mloop server`: its id (12 hex digits, the public part of the token),
# the SHA-256 of its secret (never the secret), role, expiry and revocation time.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(12), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("sha256", DIGEST, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger),
    Column("revoked_ms", BigInteger),
    Column("created_by", String(200), nullable=False),
    Index("ix_api_tokens_name", "name"),
)

# Browser sessions ended by /logout before their expiry, by the session's nonce: every
# worker and every restart of the server refuses them (rows past ``expires_ms`` are pruned).
ended_sessions = Table(
    "ended_sessions", metadata,
    Column("nonce", String(32), primary_key=True),
    Column("token_id", String(12), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("ended_ms", BigInteger, nullable=False),
    Index("ix_ended_sessions_expires_ms", "expires_ms"),
)

# Who did which write through the server: one row per request (or method call), written
# in batches by mloop.server.audit. ``target`` is short and redacted; ``status`` the HTTP one.
audit_log = Table(
    "audit_log", metadata,
    Column("id", ID, primary_key=True),  # UUIDv7: sorts by time
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("token_id", String(12)),
    Column("role", String(16), nullable=False),
    Column("action", String(200), nullable=False),
    Column("target", String(300)),
    Column("status", Integer, nullable=False),
    Index("ix_audit_log_at_ms", "at_ms"),
    Index("ix_audit_log_actor_at_ms", "actor", "at_ms"),
)
