"""The ABI gate on ELF files compiled here, now: each fixture is a few lines of C linked
against stand-in libraries whose sonames and version nodes a linker version script sets, so
a file "needs GLIBC_2.35 of libm.so.6" whatever this machine's glibc is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chalicelib.errors import ArtifactInvalidError
from chalicelib.lambda_os import target
from chalicelib.models import Architecture, BuildSpec
from chalicelib.pipeline.abi import check_abi, read_elf
from chalicelib.pipeline.artifacts import validate_artifacts
from tests.layerkit import Artifacts, Entry

# build-essential is one of `make deps`' packages.
CC = shutil.which("cc") or "cc"
SPEC = BuildSpec(r_version="4.2.2", packages=["digest"])  # type: ignore[list-item]
AL2023 = target("provided.al2023")


class Toolbox:
    """Compiles stand-in libraries and the files that need them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _cc(self, out: Path, *args: str) -> Path:
        subprocess.run([CC, "-fPIC", "-o", str(out), *args], check=True, capture_output=True)
        return out

    def library(self, soname: str, nodes: dict[str, list[str]] | None, symbols: list[str]) -> Path:
        """A shared library ``soname`` defining ``symbols`` (in version ``nodes``, or
        unversioned when None)."""
        out = self.root / "stand-ins" / soname
        out.parent.mkdir(exist_ok=True)
        src = self.root / f"{soname}.c"
        src.write_text("".join(f"int {s}(void) {{ return 0; }}\n" for s in symbols))
        args = ["-shared", "-nostdlib", f"-Wl,-soname,{soname}", str(src)]
        if nodes is not None:
            script = self.root / f"{soname}.map"
            script.write_text(
                "".join(
                    f"{node} {{ global: {' '.join(f'{sym};' for sym in syms)} }};\n"
                    if syms
                    else f"{node} {{ }};\n"
                    for node, syms in nodes.items()
                )
            )
            args.append(f"-Wl,--version-script={script}")
        return self._cc(out, *args)

    def user(self, name: str, calls: list[str], libs: list[Path], *extra: str) -> bytes:
        """A shared object calling ``calls``, linked against ``libs``."""
        src = self.root / f"{name}.c"
        src.write_text(
            "".join(f"int {c}(void);\n" for c in calls)
            + "int entry(void) { return 0"
            + "".join(f" + {c}()" for c in calls)
            + "; }\n"
        )
        out = self.root / f"{name}.so"
        return self._cc(out, "-shared", "-nostdlib", str(src), *map(str, libs), *extra).read_bytes()

    def program(self, name: str, calls: list[str], libs: list[Path]) -> bytes:
        src = self.root / f"{name}-main.c"
        src.write_text(
            "".join(f"int {c}(void);\n" for c in calls)
            + "int main(void) { return 0"
            + "".join(f" + {c}()" for c in calls)
            + "; }\n"
        )
        return self._cc(self.root / name, str(src), *map(str, libs)).read_bytes()


@pytest.fixture
def tools(tmp_path: Path) -> Toolbox:
    return Toolbox(tmp_path)


def _with(artifacts: Artifacts, kind: str, *entries: Entry) -> Artifacts:
    layer = artifacts.layer(kind)  # type: ignore[arg-type]
    return artifacts.with_layer(kind, entries=[*layer.entries, *entries])  # type: ignore[arg-type]


def _validate(artifacts: Artifacts, spec: BuildSpec = SPEC) -> None:
    validate_artifacts(spec, Artifacts(spec, artifacts.layers).inputs())


def _rejected(artifacts: Artifacts, spec: BuildSpec = SPEC) -> str:
    with pytest.raises(ArtifactInvalidError) as caught:
        _validate(artifacts, spec)
    return caught.value.message


def _needs(artifacts: Artifacts, kind: str, **fields: object) -> Artifacts:
    """The manifest saying what its ELF files need (the gate compares)."""
    layer = artifacts.layer(kind)  # type: ignore[arg-type]
    return artifacts.with_layer(kind, overrides={**layer.overrides, **fields})  # type: ignore[arg-type]


def test_a_libR_needing_glibc_2_35_is_rejected_by_name(tools: Toolbox) -> None:
    # The defect seen on Lambda: hypot@GLIBC_2.35 in libR.so, against provided.al2023's 2.34.
    libm = tools.library("libm.so.6", {"GLIBC_2.2.5": [], "GLIBC_2.35": ["hypot"]}, ["hypot"])
    libr = tools.user("libR", ["hypot"], [libm])
    assert read_elf("/opt/R/lib/R/lib/libR.so", libr).verneed == {"libm.so.6": ("GLIBC_2.35",)}
    artifacts = _with(
        Artifacts.synthetic(SPEC), "runtime", Entry("R/lib/R/lib/libR.so", libr, 0o755)
    )
    message = _rejected(_needs(artifacts, "runtime", needs_glibc="2.35"))
    assert (
        "runtime.zip: R/lib/R/lib/libR.so: needs GLIBC_2.35 from libm.so.6; "
        "provided.al2023 (Amazon Linux 2023) has glibc 2.34"
    ) in message


def test_glibc_2_34_and_older_pass_and_the_manifest_must_say_the_newest(tools: Toolbox) -> None:
    libm = tools.library(
        "libm.so.6", {"GLIBC_2.2.5": ["cos"], "GLIBC_2.29": ["exp"]}, ["cos", "exp"]
    )
    libr = tools.user("libR", ["cos", "exp"], [libm])
    artifacts = _with(
        Artifacts.synthetic(SPEC), "runtime", Entry("R/lib/R/lib/libR.so", libr, 0o755)
    )
    _validate(_needs(artifacts, "runtime", needs_glibc="2.29"))
    message = _rejected(_needs(artifacts, "runtime", needs_glibc=None))
    assert "runtime.manifest.json: needs_glibc is None but its ELF files need '2.29'" in message


def test_cxx_code_needing_glibcxx_3_4_30_is_rejected(tools: Toolbox) -> None:
    # GCC 12's libstdc++ (Debian 12) defines GLIBCXX_3.4.30; Amazon Linux 2023 has GCC 11.
    libstdcxx = tools.library(
        "libstdc++.so.6", {"GLIBCXX_3.4": ["old"], "GLIBCXX_3.4.30": ["new"]}, ["old", "new"]
    )
    so = tools.user("pkg", ["new"], [libstdcxx])
    artifacts = _with(
        Artifacts.synthetic(SPEC),
        "packages",
        Entry("packages/library/digest/libs/digest.so", so, 0o755),
    )
    message = _rejected(artifacts)
    assert "packages/library/digest/libs/digest.so: needs GLIBCXX_3.4.30 from libstdc++.so.6" in (
        message
    )
    assert "has GLIBCXX 3.4.29" in message


def test_a_library_neither_bundled_nor_in_the_lambda_os_is_rejected(tools: Toolbox) -> None:
    # Debian 11's libcurl brings OpenSSL 1.1; Amazon Linux 2023 has only OpenSSL 3.
    libssl = tools.library("libssl.so.1.1", None, ["SSL_new"])
    so = tools.user("pkg", ["SSL_new"], [libssl])
    artifacts = _with(
        Artifacts.synthetic(SPEC),
        "packages",
        Entry("packages/library/digest/libs/digest.so", so, 0o755),
    )
    message = _rejected(artifacts)
    assert "digest.so: needs libssl.so.1.1, found neither in the layers" in message
    # Bundled in /opt/lib (the packages layer's lib/), the same file passes.
    bundled = _with(artifacts, "packages", Entry("lib/libssl.so.1.1", libssl.read_bytes(), 0o755))
    _validate(bundled)


def test_runpath_counts_only_inside_opt(tools: Toolbox) -> None:
    libx = tools.library("libx.so.1", None, ["x"])
    inside = tools.user("inside", ["x"], [libx], "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../deps")
    outside = tools.user("outside", ["x"], [libx], "-Wl,--enable-new-dtags,-rpath,/usr/local/lib")
    assert read_elf("/opt/packages/library/digest/libs/a.so", inside).search_path == (
        "/opt/packages/library/digest/deps",
    )
    base = _with(
        Artifacts.synthetic(SPEC),
        "packages",
        Entry("packages/library/digest/deps/libx.so.1", libx.read_bytes(), 0o755),
    )
    _validate(_with(base, "packages", Entry("packages/library/digest/libs/a.so", inside, 0o755)))
    message = _rejected(
        _with(base, "packages", Entry("packages/library/digest/libs/b.so", outside, 0o755))
    )
    assert "libs/b.so: needs libx.so.1, found neither" in message


def test_a_version_a_bundled_library_does_not_define_is_rejected(tools: Toolbox) -> None:
    new = tools.library("libgfortran.so.5", {"GFORTRAN_8": ["f"], "GFORTRAN_10": ["g"]}, ["f", "g"])
    old = tools.library("libold.so.5", {"GFORTRAN_8": ["f"]}, ["f"])
    user = tools.user("libR", ["g"], [new])
    artifacts = Artifacts.synthetic(SPEC)
    runtime = [e for e in artifacts.layer("runtime").entries if not e.name.startswith("lib/")]
    artifacts = artifacts.with_layer(
        "runtime",
        entries=[
            *runtime,
            Entry("R/lib/R/lib/libR.so", user, 0o755),
            Entry("lib/libgfortran.so.5", old.read_bytes(), 0o755),
        ],
    )
    message = _rejected(artifacts)
    assert "needs version GFORTRAN_10 of libgfortran.so.5, which /opt/lib/libgfortran.so.5" in (
        message
    )


def test_the_wrong_machine_is_rejected() -> None:
    spec = SPEC.model_copy(update={"architecture": Architecture.ARM64})
    artifacts = Artifacts.synthetic(SPEC)  # x86_64 ELF headers
    message = _rejected(artifacts, spec)
    assert "R/lib/R/bin/exec/R: ELF machine is x86_64, the build is for arm64" in message


def test_an_unparsable_elf_file_is_a_validation_failure_naming_it() -> None:
    garbage = b"\x7fELF\x02\x01\x01" + b"\xff" * 200
    artifacts = _with(
        Artifacts.synthetic(SPEC), "runtime", Entry("lib/libbroken.so.1", garbage, 0o755)
    )
    message = _rejected(artifacts)
    assert "runtime.zip: lib/libbroken.so.1: not a readable ELF file" in message


def test_unversioned_libcurl_is_fine_for_a_dlopened_module_but_not_at_start(
    tools: Toolbox,
) -> None:
    # Debian's libcurl tags its symbols CURL_OPENSSL_4; Amazon Linux 2023's defines none.
    curl = tools.library("libcurl.so.4", {"CURL_OPENSSL_4": ["curl_easy_init"]}, ["curl_easy_init"])
    module = tools.user("internet", ["curl_easy_init"], [curl])
    assert AL2023.defines_no_versions("libcurl.so.4")
    artifacts = _with(
        Artifacts.synthetic(SPEC),
        "runtime",
        Entry("R/lib/R/modules/internet.so", module, 0o755),
    )
    _validate(artifacts)
    program = tools.program("curler", ["curl_easy_init"], [curl])
    report = check_abi(
        AL2023,
        Architecture.X86_64,
        {"/opt/R/bin/curler": program},
        ["/opt/R/bin/curler"],
        {},
    )
    reasons = [reason for _path, reason in report.problems]
    assert any(
        "needs version CURL_OPENSSL_4 of libcurl.so.4" in r and "defines no versions" in r
        for r in reasons
    ), reasons


def test_the_table_drops_provided_al2_and_backs_the_compatible_runtimes() -> None:
    from chalicelib.aws.lambdas import COMPATIBLE_RUNTIMES

    assert COMPATIBLE_RUNTIMES == ("provided.al2023",)
    assert (AL2023.glibc, AL2023.glibcxx, AL2023.cxxabi) == ("2.34", "3.4.29", "1.3.13")
    assert AL2023.defines("libc.so.6", "GLIBC_2.2.5")
    assert not AL2023.defines("libc.so.6", "GLIBC_2.35")
    assert not AL2023.defines("libc.so.6", "GLIBC_PRIVATE")
    assert AL2023.defines("libgcc_s.so.1", "GCC_4.2.0")
    assert not AL2023.defines("libgcc_s.so.1", "GCC_12.0.0")


def test_the_readme_shows_the_table_as_it_is() -> None:
    from chalicelib.lambda_os import render_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert render_markdown() in readme
