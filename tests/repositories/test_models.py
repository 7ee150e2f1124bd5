"""The Models contract: registry versions, aliases, tags, statuses and the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mloop import repositories
from mloop.errors import InvalidInputError, ModelNotFoundError, NotFoundError
from mloop.project import Project
from mloop.repositories.models import Models, ModelStatus, parse_model_ref

DIGEST = "ab" * 32


def _register(models: Models, name: str = "churn", run_id: str = "r1",
              message: str | None = "from runs:/r1/model") -> int:
    return models.register(name, run_id=run_id, artifact_path="model", manifest=DIGEST,
                           flavor="sklearn", description=None, message=message).version


@pytest.fixture
def models(project: Project) -> Models:
    return repositories.backend(project).models


def test_register_numbers_versions_per_model(models: Models) -> None:
    assert [_register(models), _register(models), _register(models, "other")] == [1, 2, 1]
    first = models.get("churn/1")
    assert (first.name, first.version, first.run_id, first.artifact_path, first.manifest,
            first.flavor, first.status) == ("churn", 1, "r1", "model", DIGEST, "sklearn",
                                            ModelStatus.REGISTERED)
    assert first.uri == "models:/churn/1" and first.source == "runs:/r1/model"
    assert first.user and first.created_at > 0


def test_refs_name_versions_aliases_and_the_latest(models: Models) -> None:
    _register(models)
    _register(models, run_id="r2")
    models.set_alias("churn", "champion", 1)
    assert models.get("churn").version == 2
    assert models.get("models:/churn/1").version == 1
    assert models.get("churn@champion").aliases == ["champion"]
    assert models.get("models:/churn@champion").version == 1
    assert [v.version for v in models.versions("churn")] == [2, 1]


def test_unknown_model_alias_or_version(models: Models) -> None:
    _register(models)
    with pytest.raises(ModelNotFoundError, match="No registered model named 'nope'"):
        models.get("nope")
    with pytest.raises(ModelNotFoundError, match="no alias 'gold'"):
        models.get("churn@gold")
    with pytest.raises(NotFoundError, match=r"no such version \(churn/9\)"):
        models.get("churn/9")
    with pytest.raises(ModelNotFoundError):
        models.versions("nope")
    with pytest.raises(ModelNotFoundError):
        models.events("nope")
    with pytest.raises(ModelNotFoundError):
        models.set_alias("nope", "x", 1)


def test_source_is_the_loading_path(project: Project, models: Models) -> None:
    _register(models)
    _register(models, run_id="r2")
    models.set_alias("churn", "champion", 1)
    fresh = Project.open(project.root, store_uri=project.settings.store_uri)
    try:
        reader = repositories.backend(fresh).models
        found = reader.source("churn@champion")
        assert (found.run_id, found.artifact_path, found.manifest, found.uri) == (
            "r1", "model", DIGEST, "models:/churn/1")
        assert reader.source("churn").uri == "models:/churn/2"
        assert reader.source("models:/churn/2").run_id == "r2"
        for ref, message in (("nope", "No registered model"), ("churn@gone", "no alias"),
                             ("models:/churn/7", r"no such version \(models:/churn/7\)")):
            with pytest.raises(ModelNotFoundError, match=message):
                reader.source(ref)
        if project.settings.store_uri.startswith("sqlite"):  # plain sqlite3, no Store
            assert "store" not in fresh.__dict__
    finally:
        fresh.close()


def test_latest_lists_every_model_by_name(models: Models) -> None:
    assert models.latest() == []
    _register(models, "b")
    _register(models, "a")
    _register(models, "a")
    assert [(v.name, v.version) for v in models.latest()] == [("a", 2), ("b", 1)]


def test_alias_moves_and_is_logged(models: Models) -> None:
    _register(models)
    _register(models)
    models.set_alias("churn", "champion", 1)
    moved = models.set_alias("churn", "champion", 2)
    assert moved.version == 2 and moved.aliases == ["champion"]
    assert models.get("churn/1").aliases == []
    actions = [(e.version, e.action, e.message) for e in models.events("churn")]
    assert actions[-2:] == [(1, "alias", "champion -> 1"), (2, "alias", "champion -> 2")]


def test_status_transitions_are_recorded(models: Models) -> None:
    _register(models)
    approved = models.set_status("churn", 1, ModelStatus.APPROVED, "looks good")
    assert approved.status == ModelStatus.APPROVED and approved.status == "approved"
    archived = models.set_status("churn", 1, ModelStatus.ARCHIVED, None)
    assert archived.status is ModelStatus.ARCHIVED
    log = models.events("churn")
    assert [(e.action, e.message) for e in log] == [
        ("registered", "from runs:/r1/model"), ("approved", "looks good"), ("archived", None)]
    assert all(e.user for e in log)
    assert ModelStatus.parse("approved") is ModelStatus.APPROVED
    with pytest.raises(InvalidInputError, match="Unknown status 'gone'"):
        ModelStatus.parse("gone")


def test_tags_are_set_and_replaced(models: Models) -> None:
    _register(models)
    models.set_tag("churn", 1, "team", "risk")
    assert models.set_tag("churn", 1, "team", "growth").tags == {"team": "growth"}


def test_delete_removes_the_version_and_its_tags(models: Models) -> None:
    _register(models)
    _register(models)
    models.set_tag("churn", 2, "team", "risk")
    models.delete("churn", 2, "mistake")
    assert [v.version for v in models.versions("churn")] == [1]
    with pytest.raises(ModelNotFoundError):
        models.get("churn/2")
    assert models.events("churn")[-1].action == "deleted"
    assert _register(models) == 2  # the number is free again, and has no old tags
    assert models.get("churn/2").tags == {}


def test_refs_parse() -> None:
    assert parse_model_ref("churn") == ("churn", None)
    parsed = parse_model_ref("churn@champion")
    assert not isinstance(parsed, tuple) and parsed.alias == "champion"
    with pytest.raises(InvalidInputError):
        parse_model_ref("churn/x")


@pytest.fixture
def two_projects(project: Project) -> Iterator[tuple[Models, Models]]:
    other = Project.open(project.root, store_uri=project.settings.store_uri)
    try:
        yield repositories.backend(project).models, repositories.backend(other).models
    finally:
        other.close()


def test_concurrent_registrations_take_distinct_numbers(
        two_projects: tuple[Models, Models]) -> None:
    first, second = two_projects
    numbers = [_register(first), _register(second), _register(first)]
    assert numbers == [1, 2, 3]
    version = first.get("churn/3")
    assert version.to_dict()["status"] == "registered"
    assert type(version.to_dict()["status"]) is str  # plain JSON, not the enum


def test_registrations_at_the_same_moment_take_distinct_numbers(
        two_projects: tuple[Models, Models]) -> None:
    """Two clients registering one model at once (on a server: two requests in flight)."""
    from concurrent.futures import ThreadPoolExecutor

    first, second = two_projects
    with ThreadPoolExecutor(6) as pool:
        numbers = list(pool.map(lambda i: _register((first, second)[i % 2]), range(12)))
    assert sorted(numbers) == list(range(1, 13))
    assert sorted(v.version for v in first.versions("churn")) == list(range(1, 13))


def test_alias_removed_and_logged(models: Models) -> None:
    _register(models)
    models.set_alias("churn", "champion", 1)
    models.delete_alias("churn", "champion")
    assert models.get("churn/1").aliases == []
    with pytest.raises(ModelNotFoundError):
        models.get("churn@champion")
    with pytest.raises(ModelNotFoundError):
        models.delete_alias("churn", "champion")
    assert [(e.action, e.message) for e in models.events("churn")][-1] == (
        "alias", "champion removed")
