"""The image recipes (images/*.Containerfile), read as text: no image is built here (`make images` builds them).

What matters for a cluster: a multi-stage build on `ARG BASE`, a final stage that only copies the venv
from the build stage (nothing fetched, nothing run), a numeric non-root USER that `runAsNonRoot` accepts,
an exec-form ENTRYPOINT that needs no shell and agrees with the runtime contract and the chart, an
environment fit for a read-only root file system, OCI labels, and image names that are the defaults the
operator and the chart already use."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from modeldeploy.operator import manifests
from modeldeploy.runtime import contract

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
BUILD_SH = ROOT / "hack" / "images" / "build.sh"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((ROOT / "charts" / "modeldeploy" / "values.yaml").read_text())
CHART = yaml.safe_load((ROOT / "charts" / "modeldeploy" / "Chart.yaml").read_text())
NAMES = ("runtime", "operator")
NONROOT = "65532"
#: Instructions allowed in the final stage: metadata, and COPY --from the build stage.
FINAL_ALLOWED = {"ARG", "COPY", "ENV", "LABEL", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "WORKDIR", "STOPSIGNAL"}
FETCHERS = re.compile(r"\b(curl|wget|git\s+clone|apt-get|apt|apk|dnf|yum)\b|https?://|--index-url|--extra-index-url")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    body: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.body if i.keyword == keyword]

    def pairs(self, keyword: str) -> dict[str, str]:
        """key=value pairs of every ENV or LABEL (or ARG) instruction of the stage, quotes removed."""
        out: dict[str, str] = {}
        for i in self.all(keyword):
            for word in shlex.split(i.args):
                key, sep, value = word.partition("=")
                out[key] = value if sep else ""
        return out


@dataclass
class Containerfile:
    pre_from: list[Instruction]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(text: str) -> Containerfile:
    """Dockerfile syntax: comments dropped, backslash continuations joined, then one instruction a line."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):  # a comment line, also inside a continued instruction
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    assert not pending, "the file ends inside a continued line"
    pre: list[Instruction] = []
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        instr = Instruction(keyword.upper(), args.strip())
        if instr.keyword == "FROM":
            words = instr.args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].body.append(instr)
        else:
            pre.append(instr)
    return Containerfile(pre, stages)


def containerfile(name: str) -> Containerfile:
    return parse((IMAGES / f"{name}.Containerfile").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_multi_stage_on_one_base_argument(name: str) -> None:
    cf = containerfile(name)
    # a `# syntax=` line would make BuildKit pull a frontend image
    assert not (IMAGES / f"{name}.Containerfile").read_text().startswith("# syntax=")
    assert [(i.keyword, i.args) for i in cf.pre_from] == [("ARG", "BASE=python:3.11-slim")]
    assert len(cf.stages) >= 2
    assert all(s.base == "${BASE}" for s in cf.stages), [s.base for s in cf.stages]
    assert cf.stages[0].name == "build"


@pytest.mark.parametrize("name", NAMES)
def test_build_stage_installs_offline_from_the_wheels_into_a_venv(name: str) -> None:
    build = containerfile(name).stages[0]
    assert [i.args for i in build.all("COPY")] == ["wheels /wheels"]
    assert not build.all("ADD")
    (run,) = build.all("RUN")
    assert "python3 -m venv --without-pip /opt/venv" in run.args
    installs = re.findall(r"\$pip install ([^;]*);", run.args)
    assert len(installs) == 2, run.args
    assert "--no-index --find-links=/wheels" in run.args
    assert f"-r /wheels/requirements-{name}.txt" in installs[0]
    assert "--no-deps modeldeploy" in installs[1]
    assert not FETCHERS.search(run.args), run.args
    assert "--invalidation-mode unchecked-hash" in run.args  # pycs valid whatever the file times


def test_runtime_onnxruntime_variant_is_a_build_argument() -> None:
    build = containerfile("runtime").stages[0]
    assert build.pairs("ARG") == {"ONNXRUNTIME": "onnxruntime"}
    (run,) = build.all("RUN")
    assert '"${ONNXRUNTIME}"' in run.args
    assert containerfile("runtime").final.pairs("LABEL")["io.modeldeploy.onnxruntime"] == "${ONNXRUNTIME}"


@pytest.mark.parametrize("name", NAMES)
def test_final_stage_only_copies_the_venv(name: str) -> None:
    final = containerfile(name).final
    assert {i.keyword for i in final.body} <= FINAL_ALLOWED, [i.keyword for i in final.body]
    copies = [i.args.split() for i in final.all("COPY")]
    assert copies, "the final stage copies the venv"
    assert all(c[0] == "--from=build" for c in copies), copies
    assert ["--from=build", "/opt/venv", "/opt/venv"] in copies
    for instr in final.body:
        assert not FETCHERS.search(instr.args) or instr.keyword in ("LABEL", "ARG"), instr


@pytest.mark.parametrize("name", NAMES)
def test_numeric_non_root_user(name: str) -> None:
    users = containerfile(name).final.all("USER")
    assert [u.args for u in users] == [f"{NONROOT}:{NONROOT}"]
    # the uid the operator's pod template and the chart run as
    assert str(manifests.RUNTIME_UID) == NONROOT
    assert str(VALUES["podSecurityContext"]["runAsUser"]) == NONROOT


@pytest.mark.parametrize("name", NAMES)
def test_exec_form_entrypoint(name: str) -> None:
    final = containerfile(name).final
    (entrypoint,) = final.all("ENTRYPOINT")
    argv = json.loads(entrypoint.args)  # exec form is a JSON array: no shell at run time
    assert isinstance(argv, list)
    assert all(isinstance(a, str) for a in argv)
    assert not final.all("CMD")
    if name == "runtime":
        assert argv == list(contract.ENTRYPOINT)  # what the local cluster's node agent runs
    else:
        assert argv == VALUES["command"] == ["modeldeploy-operator"]
        assert "modeldeploy-operator" in PYPROJECT["project"]["scripts"]


@pytest.mark.parametrize("name", NAMES)
def test_environment_fits_a_read_only_root(name: str) -> None:
    env = containerfile(name).final.pairs("ENV")
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"  # `python` and the console scripts resolve to the venv
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONSAFEPATH"] == "1"
    assert env["HOME"] == "/tmp"  # the emptyDir, the only writable path
    assert manifests.CACHE_DIR.startswith("/tmp/")
    if name == "runtime":
        assert env["ORT_DISABLE_TELEMETRY"] == "1"


@pytest.mark.parametrize("name", NAMES)
def test_oci_labels(name: str) -> None:
    final = containerfile(name).final
    labels = final.pairs("LABEL")
    assert labels["org.opencontainers.image.title"] == f"modeldeploy-{name}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE}"
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    args = final.pairs("ARG")
    assert {"VERSION", "REVISION", "SOURCE"} <= args.keys()
    assert args["SOURCE"] == CHART["home"]


def test_exposed_ports_match_the_contract_and_the_chart() -> None:
    assert containerfile("runtime").final.all("EXPOSE")[0].args.split() == [str(contract.DEFAULT_PORT)]
    operator_ports = containerfile("operator").final.all("EXPOSE")[0].args.split()
    assert operator_ports == [str(VALUES["metrics"]["port"]), str(VALUES["health"]["port"])]


def test_image_names_are_the_operator_and_chart_defaults() -> None:
    """build.sh tags REGISTRY/{runtime,operator}:VERSION; unchanged, those are the defaults already in use."""
    script = BUILD_SH.read_text()
    registry = re.search(r"^REGISTRY=\$\{REGISTRY:-([^}]+)\}$", script, re.MULTILINE)
    assert registry, "build.sh sets REGISTRY with a default"
    version = PYPROJECT["project"]["version"]
    assert f"{registry.group(1)}/runtime" == contract.IMAGE_REPOSITORY
    assert f"{contract.IMAGE_REPOSITORY}:{version}" == contract.DEFAULT_IMAGE
    assert f"{registry.group(1)}/operator" == VALUES["image"]["repository"]
    assert not VALUES["image"]["tag"]
    assert CHART["appVersion"] == version
    assert "--isolation chroot" in script
    assert "unshare -n" in script


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = (
        'ARG BASE=x\nFROM ${BASE} AS build\n# c\nRUN a \\\n  # inner\n  b\nFROM ${BASE}\nENV A=1 \\\n B="two words"\n'
    )
    cf = parse(text)
    assert [s.name for s in cf.stages] == ["build", None]
    assert cf.stages[0].body == [Instruction("RUN", "a    b")]
    assert cf.final.pairs("ENV") == {"A": "1", "B": "two words"}
