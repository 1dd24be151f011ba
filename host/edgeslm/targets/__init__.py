"""Targets: one module per family of cores (see base.py for what a target holds).

    get_target(name) -> Target
"""

from __future__ import annotations

from . import cortex_m, pulp_cluster
from .base import Core, CoreConfig, KernelSpec, Target, TargetError, work_units

TARGETS: dict[str, Target] = {t.name: t for t in (cortex_m.TARGET, pulp_cluster.TARGET)}


def get_target(name: str) -> Target:
    t = TARGETS.get(name)
    if t is None:
        raise TargetError(f"unknown target '{name}'", f"choose one of: {', '.join(sorted(TARGETS))}")
    return t


__all__ = ["Core", "CoreConfig", "KernelSpec", "Target", "TargetError", "TARGETS", "get_target", "work_units"]
