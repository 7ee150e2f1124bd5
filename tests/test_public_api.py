"""The public surface is pinned: changing it must be a deliberate edit here."""

import mloop

EXPECTED = [
    "ActiveRun", "Dataset", "Experiment", "MloopError", "Model", "Pipeline", "Project",
    "Report", "Run", "RunStatus", "__version__", "step",
    "active_run", "autolog", "current_project", "delete_runs", "download_artifacts", "end_run",
    "flush", "fsck", "get_experiment", "get_run", "init", "list_experiments", "log_artifact",
    "log_artifacts", "log_dict", "log_feedback", "log_figure", "log_input", "log_metric",
    "log_metrics",
    "log_param",
    "log_params", "log_text", "read_artifact", "restore_runs", "search_runs", "seed_everything",
    "set_experiment", "set_project", "set_tag", "set_tags", "start_run",
    # model registry
    "approve_model", "archive_model", "delete_model_version", "get_model_version",
    "list_model_versions", "list_models", "load_model", "log_model", "model_events",
    "register_model", "reject_model", "set_alias", "set_model_tag",
    # evaluation
    "evaluate",
    # serving
    "batch_predict", "lookup", "result", "submit",
]


def test_all_is_sorted_and_pinned():
    assert mloop.__all__ == sorted(mloop.__all__)
    assert set(mloop._LAZY) | {"__version__"} == set(mloop.__all__)
    assert mloop.__all__ == sorted(EXPECTED)


def test_every_name_resolves_and_is_documented():
    for name in mloop.__all__:
        obj = getattr(mloop, name)
        if callable(obj) and name != "__version__":
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_error_tree_has_http_and_exit_codes():
    from mloop import errors

    for name in errors.__all__:
        if name == "EXIT_CODES":
            continue
        cls = getattr(errors, name)
        if name == "EXIT_CODES":  # the table the classes' codes come from
            continue
        assert issubclass(cls, errors.MloopError)
        assert 400 <= cls.http_status < 600 and cls.exit_code in errors.EXIT_CODES
        assert cls.exit_code != 0
