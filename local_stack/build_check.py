"""Checks that every compiled extension in a ``sam build`` output fits the functions' architecture.

An x86_64 ``pydantic_core`` in an arm64 function builds fine and fails at import in Lambda;
this catches it before a deploy.
"""

from __future__ import annotations

import struct
from pathlib import Path

# ELF e_machine values of Lambda's two architectures.
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


def elf_architecture(path: Path) -> str | None:
    """The architecture of an ELF shared object, or None when the file is not ELF."""
    with path.open("rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byte_order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(f"{byte_order}H", header[18:20])
    return ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


def mismatched_extensions(build_dir: Path, architectures: set[str]) -> list[str]:
    """Compiled files under ``build_dir`` built for none of ``architectures``."""
    problems = []
    for path in sorted(build_dir.rglob("*.so*")):
        if not path.is_file():
            continue
        found = elf_architecture(path)
        if found is not None and found not in architectures:
            problems.append(f"{path.relative_to(build_dir)}: {found}, expected {' or '.join(sorted(architectures))}")
    return problems
