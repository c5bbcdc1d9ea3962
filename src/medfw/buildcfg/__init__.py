"""ESP-IDF build-configuration gate: the security options of a release build checked against a policy.

Public API::

    config = load_config("sdkconfig")          # or sdkconfig.json, or a build directory
    result = check_config(config, BuildPolicy.load("policy.yml"))
    result.passed, result.violations, result.to_dict()
"""

from __future__ import annotations

from medfw.buildcfg.check import BuildCheck, check_config
from medfw.buildcfg.policy import BuildPolicy
from medfw.buildcfg.rules import RULES, Rule, RuleId, RuleResult, Status
from medfw.buildcfg.sdkconfig import SdkConfig, load_config, parse_sdkconfig, parse_sdkconfig_json

__all__ = [
    "RULES",
    "BuildCheck",
    "BuildPolicy",
    "Rule",
    "RuleId",
    "RuleResult",
    "SdkConfig",
    "Status",
    "check_config",
    "load_config",
    "parse_sdkconfig",
    "parse_sdkconfig_json",
]
