"""The artifact validator on crafted zips, in memory: one broken thing per case."""

from __future__ import annotations

import pytest

from chalicelib.errors import ArtifactInvalidError
from chalicelib.models import BuildSpec
from chalicelib.packages.dcf import parse_dcf
from chalicelib.pipeline.artifacts import (
    FUNCTION_CODE_MARGIN,
    LAMBDA_UNZIPPED_LIMIT,
    LayerArtifact,
    ValidatedLayer,
    validate_artifacts,
)
from tests.layerkit import BROKEN, CASE_SPEC, Artifacts, Entry, description


def _inputs(artifacts: Artifacts) -> list[LayerArtifact]:
    return artifacts.inputs()


def _validate(artifacts: Artifacts, **kwargs: int) -> list[ValidatedLayer]:
    return validate_artifacts(artifacts.spec, _inputs(artifacts), **kwargs)


def test_a_sound_build_passes_and_reports_what_was_measured() -> None:
    artifacts = Artifacts.synthetic(CASE_SPEC)
    layers = _validate(artifacts)
    assert [layer.kind for layer in layers] == ["runtime", "packages"]
    for layer in layers:
        manifest = artifacts.layer(layer.kind).manifest(CASE_SPEC)
        assert layer.sha256 == manifest.sha256
        assert layer.zipped_bytes == len(artifacts.layer(layer.kind).zip())
        assert layer.unzipped_bytes == manifest.unzipped_bytes > 0
        assert layer.file_count == manifest.file_count > 0
    # The synthetic runtime has a symlink inside the layer (lib/libgfortran.so): accepted.
    assert any(e.symlink for e in artifacts.layer("runtime").entries)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_artifact_is_rejected_with_its_reason(case: str) -> None:
    mutate, reason = BROKEN[case]
    sound = Artifacts.synthetic(CASE_SPEC)
    _validate(sound)  # the same build without this one defect passes
    with pytest.raises(ArtifactInvalidError) as caught:
        _validate(mutate(sound))
    assert reason in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    mutate_a, reason_a = BROKEN["bootstrap_not_executable"]
    mutate_b, reason_b = BROKEN["package_not_installed"]
    with pytest.raises(ArtifactInvalidError) as caught:
        _validate(mutate_b(mutate_a(Artifacts.synthetic(CASE_SPEC))))
    assert reason_a in caught.value.message
    assert reason_b in caught.value.message


def test_the_size_limit_counts_every_layer_plus_a_margin_for_the_function() -> None:
    artifacts = Artifacts.synthetic(CASE_SPEC)
    total = sum(layer.unzipped_bytes for layer in _validate(artifacts))
    _validate(artifacts, limit=total + FUNCTION_CODE_MARGIN)  # exactly at the limit: fine
    with pytest.raises(ArtifactInvalidError, match="exceed Lambda's"):
        _validate(artifacts, limit=total + FUNCTION_CODE_MARGIN - 1)
    assert LAMBDA_UNZIPPED_LIMIT == 262_144_000


def test_a_build_without_packages_needs_no_packages_layer() -> None:
    spec = BuildSpec(r_version="4.2.2")
    assert [layer.kind for layer in _validate(Artifacts.synthetic(spec))] == ["runtime"]


def test_a_package_may_come_from_the_runtime_layer() -> None:
    # jsonlite is in the runtime layer (the loop needs it); asking for it alone is fine.
    spec = BuildSpec(r_version="4.2.2", packages=["jsonlite"])  # type: ignore[arg-type]
    artifacts = Artifacts(spec, Artifacts.synthetic(spec).layers[:1])
    assert [layer.kind for layer in _validate(artifacts)] == ["runtime"]


def test_a_pinned_version_must_be_the_installed_one() -> None:
    spec = BuildSpec(r_version="4.2.2", packages=["digest==0.6.33"])  # type: ignore[arg-type]
    artifacts = Artifacts.synthetic(spec, versions={"digest": "0.6.30"})
    with pytest.raises(ArtifactInvalidError, match=r"not the pinned 0\.6\.33"):
        _validate(artifacts)


def test_a_package_built_for_another_r_is_rejected() -> None:
    spec = BuildSpec(r_version="4.2.2", packages=["digest"])  # type: ignore[arg-type]
    artifacts = Artifacts.synthetic(spec, versions={"digest": "1.0.0"})
    layer = artifacts.layer("packages")
    entries = [
        Entry(e.name, description("digest", "1.0.0", r_version="4.1.0"))
        if e.name.endswith("digest/DESCRIPTION")
        else e
        for e in layer.entries
    ]
    with pytest.raises(ArtifactInvalidError, match=r"built for R 4\.1, not R 4\.2"):
        _validate(artifacts.with_layer("packages", entries=entries))


def test_stray_top_level_entries_are_rejected() -> None:
    artifacts = Artifacts.synthetic(CASE_SPEC)
    layer = artifacts.layer("packages")
    broken = artifacts.with_layer("packages", entries=[*layer.entries, Entry("bootstrap", b"x")])
    with pytest.raises(ArtifactInvalidError, match=r"unexpected top-level entries \['bootstrap'\]"):
        _validate(broken)


def test_duplicate_entries_are_rejected() -> None:
    artifacts = Artifacts.synthetic(CASE_SPEC)
    layer = artifacts.layer("runtime")
    twice = [*layer.entries, Entry("runtime/runtime.R", b"# another loop\n")]
    broken = artifacts.with_layer("runtime", entries=twice)
    with pytest.warns(UserWarning, match="Duplicate name"):
        broken.files()
    with pytest.raises(ArtifactInvalidError, match=r"'runtime/runtime\.R' appears twice"):
        _validate(broken)


def test_description_files_parse_with_continuation_lines() -> None:
    text = "Package: digest\nVersion: 0.6.33\nDescription: Hashes\n  of objects.\nBuilt: R 4.2.2\n"
    fields = parse_dcf(text)
    assert fields["Version"] == "0.6.33"
    assert fields["Description"] == "Hashes of objects."
