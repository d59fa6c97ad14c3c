"""docker-compose.yml and the Procfile cannot run here (no Docker engine): check that
everything they name exists in the project."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import yaml

from foundation.settings import describe
from framewire.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {variable for variable, _, _ in describe()}


def check_command(argv: list[str]) -> None:
    """A `framewire ...` command must resolve to a real CLI command; `celery -A M` to a module."""
    if argv[0] == "framewire":
        ctx = click.Context(cli)
        command: click.Command = cli
        for word in argv[1:]:
            if word.startswith("-") or not isinstance(command, click.Group):
                break
            found = command.get_command(ctx, word)
            assert found is not None, f"no such command: {' '.join(argv)}"
            command = found
        assert "not implemented yet" not in (command.help or ""), argv
    elif argv[0] == "celery":
        importlib.import_module(argv[argv.index("-A") + 1])
    else:
        raise AssertionError(f"unknown program {argv[0]}")


def test_compose_services_use_what_exists():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        if "command" in service and build:
            check_command(service["command"])
        for variable in service.get("environment", {}):
            if variable.startswith("FRAMEWIRE_"):
                assert variable in SETTINGS, f"{name}: unknown setting {variable}"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], f"{name}: depends on {dependency}"


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    # The packages pyproject.toml installs (tomllib is 3.11+; framewire supports 3.10).
    line = re.search(r"^include = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert line is not None
    packages = [p.strip().strip('"').rstrip("*") for p in line.group(1).split(",")]
    assert "foundation" in packages
    for package in packages:
        assert f"COPY {package} " in dockerfile, f"the image lacks {package}/"


def test_procfile_commands_exist():
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            check_command(shlex.split(line.split(":", 1)[1]))


def test_scripts_parse_and_use_real_bench_flags():
    import subprocess

    from framewire.cli.bench import bench

    known = {opt for param in bench.params for opt in param.opts}
    for script in sorted((ROOT / "scripts").glob("*.sh")):
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = script.read_text()
        marker = "python3 -m framewire bench"
        if marker in text:
            call = text.split(marker, 1)[1].split("2>&1", 1)[0]
            used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", call))
            assert used <= known, (script.name, used - known)
