"""Evaluate a build configuration against a policy: :func:`check_config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medfw.buildcfg.policy import BuildPolicy
from medfw.buildcfg.rules import RULES, RuleId, RuleResult, Status
from medfw.buildcfg.sdkconfig import SdkConfig

__all__ = ["BuildCheck", "check_config"]


@dataclass(frozen=True)
class BuildCheck:
    """Every rule's result for one configuration."""

    config: SdkConfig
    policy: BuildPolicy
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        """True when no enabled rule failed or is blocked."""
        return all(r.status in (Status.PASS, Status.SKIPPED) for r in self.results)

    @property
    def violations(self) -> list[RuleResult]:
        """The failed rules (blocked ones are not counted twice)."""
        return [r for r in self.results if r.status is Status.FAIL]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (also the evidence bundle's ``results/build-config.json``)."""
        counts = {s.value: sum(r.status is s for r in self.results) for s in Status}
        return {
            "config": self.config.path,
            "format": self.config.format,
            "target": self.config.target,
            "idf_version": self.config.idf_version,
            "policy": self.policy.source,
            "ok": self.passed,
            "counts": counts,
            "rules": [r.to_dict() for r in self.results],
        }


def check_config(config: SdkConfig, policy: BuildPolicy | None = None) -> BuildCheck:
    """Run every rule (in the order of :data:`RULES`) that ``policy`` enables over ``config``."""
    policy = policy or BuildPolicy.default()
    results: dict[RuleId, RuleResult] = {}
    for rid, rule in RULES.items():
        if rid not in policy.enabled:
            results[rid] = RuleResult(rid, Status.SKIPPED, "disabled by the policy")
            continue
        ok, message, symbols = rule.check(config, policy.options.get(rid, {}))
        read = {s: config.values.get(s) for s in symbols}
        where = config.where(symbols[0]) if symbols else config.path
        status = Status.PASS if ok else Status.FAIL
        if not ok:
            failing = [r for r in rule.requires if r in results and results[r].status is Status.FAIL]
            if failing:
                status = Status.BLOCKED
                message = f"{message} — needs {', '.join(failing)}, which fails"
        results[rid] = RuleResult(rid, status, message, read, where)
    return BuildCheck(config, policy, tuple(results.values()))
