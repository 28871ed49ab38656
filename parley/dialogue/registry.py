"""Policy names as config.yml writes them → their classes, imported only when asked for."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from parley.dialogue.policies.base import Policy
from parley.errors import ConfigError

__all__ = ["NOT_YET", "POLICIES", "REMOVED_IN_RASA_3", "get_policy_class", "make_policy"]

POLICIES: dict[str, str] = {
    "MemoizationPolicy": "parley.dialogue.policies.memoization:MemoizationPolicy",
    "AugmentedMemoizationPolicy":
        "parley.dialogue.policies.memoization:AugmentedMemoizationPolicy",
    "RulePolicy": "parley.dialogue.policies.rule:RulePolicy",
}
# Rasa 3.x policies Parley does not implement yet.
NOT_YET = ("TEDPolicy", "UnexpecTEDIntentPolicy")
# Rasa 2 policies that Rasa 3 removed, and what replaces them.
REMOVED_IN_RASA_3 = {
    "MappingPolicy": "rules (RulePolicy)",
    "FormPolicy": "RulePolicy with rules for the form",
    "FallbackPolicy": "RulePolicy's core_fallback_threshold and core_fallback_action_name",
    "TwoStageFallbackPolicy": "RulePolicy with the action_two_stage_fallback rule",
}


def get_policy_class(name: str) -> type[Policy]:
    """The class for a policy name of config.yml (Rasa's names)."""
    if name in POLICIES:
        module_name, _, class_name = POLICIES[name].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(cls, Policy)
        return cls
    available = ", ".join(POLICIES)
    if name in NOT_YET:
        raise ConfigError(
            f"the policy '{name}' is a Rasa policy that Parley does not have yet. "
            f"Remove it from config.yml or use one of: {available}.")
    if name in REMOVED_IN_RASA_3:
        raise ConfigError(
            f"the policy '{name}' was removed in Rasa 3.0; use {REMOVED_IN_RASA_3[name]} "
            "instead.")
    close = difflib.get_close_matches(name, [*POLICIES, *NOT_YET], n=1)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"unknown policy '{name}'.{guess} Available: {available}.")


def make_policy(name: str, params: dict[str, Any] | None = None, where: str = "") -> Policy:
    """A policy built from its config.yml entry; unknown parameters are errors."""
    policy = get_policy_class(name).from_params(params or {}, where)
    assert isinstance(policy, Policy)
    return policy
