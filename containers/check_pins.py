#!/usr/bin/env python3
"""Checks that the running environment has every pin: the direct dependencies of pyproject.toml, plus
any NAME==VERSION given as arguments (the data packages the Makefile installs with --no-deps).
A local version tag is ignored (torch 2.13.0+cu130 satisfies torch==2.13.0).

Used by the %test sections of containers/*.def, and by tests/test_containers.py on the project's .venv.

    python containers/check_pins.py pyproject.toml [NAME==VERSION ...]
"""

import importlib.metadata as md
import re
import sys
import tomllib

PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*)==([^\s;]+)")


def pins(pyproject: str, extra: list[str]) -> dict[str, str]:
    with open(pyproject, "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    out = {}
    for dep in [*deps, *extra]:
        m = PIN.fullmatch(dep.strip())
        if not m:
            raise SystemExit(f"{dep!r} is not an exact NAME==VERSION pin")
        out[m.group(1)] = m.group(2)
    return out


def mismatches(wanted: dict[str, str]) -> list[str]:
    bad = []
    for name, version in wanted.items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            bad.append(f"{name}: not installed, {version} pinned")
            continue
        if installed.split("+")[0] != version:
            bad.append(f"{name}: {installed} installed, {version} pinned")
    return bad


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    wanted = pins(argv[0], argv[1:])
    bad = mismatches(wanted)
    for line in bad:
        print(f"check_pins: {line}", file=sys.stderr)
    if not bad:
        print(f"check_pins: all {len(wanted)} pins installed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
