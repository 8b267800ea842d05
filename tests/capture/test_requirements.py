"""Requirements come from what the code imports, pinned to installed versions, never a freeze."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from bento_jupyter.capture.requirements import infer_requirements, lock_requirements, validate_requirement


def test_imported_modules_map_to_pinned_distributions():
    pins = infer_requirements({"numpy", "yaml", "json", "os"})
    assert f"numpy=={metadata.version('numpy')}" in pins
    assert any(p.lower().startswith("pyyaml==") for p in pins)
    assert not any(p.startswith(("json", "os")) for p in pins)
    assert len(pins) == 2


def test_local_version_labels_are_dropped_from_pins():
    pins = infer_requirements({"torch"})
    assert pins == [f"torch=={metadata.version('torch').split('+')[0]}"]


def test_overrides_replace_inferred_pins():
    assert infer_requirements({"numpy"}, ["numpy>=1.26,<3", "requests==2.31.0"]) == [
        "numpy>=1.26,<3",
        "requests==2.31.0",
    ]


@pytest.mark.parametrize("bad", ["numpy; rm -rf /", "numpy\nRUN x", "git+https://x/y", "-e .", "a==1 b==2"])
def test_requirement_strings_are_validated(bad):
    with pytest.raises(ValueError):
        validate_requirement(bad)


def test_the_lock_is_the_transitive_closure_pinned_to_installed_versions():
    lock = lock_requirements([f"requests=={metadata.version('requests')}"])
    names = {line.split("==")[0].lower() for line in lock}
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= names
    for line in lock:
        name, version = line.split("==")
        assert metadata.version(name).split("+")[0] == version


def test_the_lock_follows_requested_extras_and_keeps_what_is_not_installed():
    plain = lock_requirements(["uvicorn"])
    standard = lock_requirements(["uvicorn[standard]", "no-such-dist-here>=1"])
    assert not any(line.startswith("httptools==") for line in plain)
    assert any(line.startswith("httptools==") for line in standard)
    assert "no-such-dist-here>=1" in standard


def test_a_package_installed_during_the_session_is_found_when_imported(tmp_path, monkeypatch):
    """What ``%pip install`` does: a new distribution appears on sys.path after the kernel started."""
    (tmp_path / "late_module").mkdir()
    (tmp_path / "late_module" / "__init__.py").write_text("VALUE = 1\n")
    info = tmp_path / "late_dist-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: late-dist\nVersion: 1.2.3\nRequires-Dist: idna\n")
    (info / "top_level.txt").write_text("late_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pins = infer_requirements({"late_module"})
    assert pins == ["late-dist==1.2.3"]
    assert any(line.startswith("idna==") for line in lock_requirements(pins))


def test_every_dependency_in_a_lock_is_satisfied_by_a_pin_of_the_same_lock():
    """What ``pip install -r`` checks: each locked distribution's requirements hold within the lock."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = lock_requirements(infer_requirements({"numpy", "yaml", "requests", "starlette", "uvicorn"}))
    pinned = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in lock}
    for name in pinned:
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(requirement.name)
            assert key in pinned, f"{name} needs {requirement}, missing from the lock"
            assert requirement.specifier.contains(pinned[key], prereleases=True), (name, line, pinned[key])


def test_import_names_that_differ_from_their_distribution_resolve_to_it():
    pins = infer_requirements({"sklearn", "yaml"})
    assert [p.split("==")[0] for p in pins] == ["PyYAML", "scikit-learn"]


def test_a_package_installed_into_a_directory_already_read_is_found_by_the_next_build(tmp_path, monkeypatch):
    """What is installed is read once per state of sys.path's directories: ``%pip install`` changes one."""
    monkeypatch.syspath_prepend(str(tmp_path))
    assert infer_requirements({"later_module"}) == []  # read (and remembered) before the install
    (tmp_path / "later_module").mkdir()
    (tmp_path / "later_module" / "__init__.py").write_text("VALUE = 1\n")
    info = tmp_path / "later_dist-0.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: later-dist\nVersion: 0.4\n")
    (info / "top_level.txt").write_text("later_module\n")
    assert infer_requirements({"later_module"}) == ["later-dist==0.4"]
    assert lock_requirements(["later-dist==0.4"]) == ["later-dist==0.4"]
