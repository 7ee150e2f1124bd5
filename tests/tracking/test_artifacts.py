import json

import pytest

import mloop
from mloop.errors import ArtifactNotFoundError, CorruptObjectError, UnsafePathError
from mloop.objects import object_relpath


def test_files_folders_text_dict_figure(sqlite_project, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.txt").write_text("B")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with mloop.start_run() as run:
        mloop.log_artifact(folder)
        mloop.log_artifacts(folder, "flat")
        mloop.log_text("hello", "notes/readme.md")
        mloop.log_dict({"a": 1, "b": [1, 2]}, "cfg/config.json")
        mloop.log_dict({"a": 1}, "cfg/config.yaml")
        mloop.log_figure(fig, "fig/curve.png")
    plt.close(fig)
    paths = [a.path for a in mloop.get_run(run.id).artifacts]
    assert paths == ["cfg/config.json", "cfg/config.yaml", "fig/curve.png", "flat/a.txt",
                     "flat/sub/b.txt", "notes/readme.md", "plots/a.txt", "plots/sub/b.txt"]
    assert json.loads(mloop.read_artifact(f"runs:/{run.id}/cfg/config.json")) == \
        {"a": 1, "b": [1, 2]}
    assert mloop.read_artifact(f"runs:/{run.id}/cfg/config.yaml") == b"a: 1\n"
    assert mloop.read_artifact(f"runs:/{run.id}/fig/curve.png").startswith(b"\x89PNG")
    out = mloop.download_artifacts(f"runs:/{run.id}/plots", tmp_path / "dl")
    assert (out / "sub" / "b.txt").read_text() == "B"


def test_identical_bytes_stored_once(sqlite_project, tmp_path):
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 100_000)
    with mloop.start_run():
        pass  # the first run also stores the git diff, if the work tree is dirty
    before = set(sqlite_project.objects.iter_digests())
    for _ in range(3):
        with mloop.start_run():
            mloop.log_artifact(f)
    assert len(set(sqlite_project.objects.iter_digests()) - before) == 1


@pytest.mark.parametrize("bad", ["../escape.txt", "/abs.txt", "a/../../x"])
def test_artifact_paths_cannot_escape(sqlite_project, bad):
    with mloop.start_run(), pytest.raises(UnsafePathError):
        mloop.log_text("x", bad)


def test_missing_artifact_and_missing_file(sqlite_project, tmp_path):
    with mloop.start_run() as run, pytest.raises(mloop.MloopError, match="no such file"):
        mloop.log_artifact(tmp_path / "nope")
    with pytest.raises(ArtifactNotFoundError):
        mloop.read_artifact(f"runs:/{run.id}/nothing.txt")


def test_corrupted_artifact_is_refused(sqlite_project):
    with mloop.start_run() as run:
        info = mloop.log_text("original", "a.txt")
    blob = sqlite_project.root / ".mloop" / "objects" / object_relpath(info.digest)
    blob.chmod(0o644)
    blob.write_text("tampered")
    with pytest.raises(CorruptObjectError):
        mloop.read_artifact(f"runs:/{run.id}/a.txt")
