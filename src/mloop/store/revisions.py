"""The schema revisions this release knows (no imports: read by every way of opening a store)."""

# Oldest first; HEAD is the last. A test checks this against the migration scripts so the
# two cannot drift apart.
REVISIONS: tuple[str, ...] = ("0001_initial", "0002_data", "0003_registry",
                             "0004_evaluations", "0005_precompute", "0006_monitoring",
                             "0007_pipelines", "0008_automation", "0009_liveness",
                             "0010_deployments", "0011_auth", "0012_feedback_by",
                             "0013_ended_sessions")
HEAD = REVISIONS[-1]
