"""Policy names of config.yml resolve to classes, with helpful errors."""

from __future__ import annotations

import pytest

from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.registry import POLICIES, get_policy_class, make_policy
from parley.errors import ConfigError


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_registered_policy_should_resolve_to_its_rasa_name(name):
    cls = get_policy_class(name)
    assert issubclass(cls, Policy) and cls.name == name


@pytest.mark.parametrize("name", ["TEDPolicy", "UnexpecTEDIntentPolicy"])
def test_rasa_policies_parley_lacks_should_say_so(name):
    with pytest.raises(ConfigError, match=f"'{name}' is a Rasa policy that Parley does not "
                                          "have yet"):
        get_policy_class(name)


def test_unknown_policy_should_suggest_and_list():
    with pytest.raises(ConfigError, match=r"unknown policy 'RulesPolicy'\. Did you mean "
                                          r"'RulePolicy'\? Available: MemoizationPolicy"):
        get_policy_class("RulesPolicy")


def test_removed_rasa_2_policy_should_name_its_replacement():
    with pytest.raises(ConfigError, match="removed in Rasa 3.0; use rules"):
        get_policy_class("MappingPolicy")


def test_make_policy_should_take_config_params_and_reject_unknown_ones():
    policy = make_policy("MemoizationPolicy", {"max_history": 3})
    assert isinstance(policy, MemoizationPolicy) and policy.max_history == 3
    with pytest.raises(ConfigError, match="has no parameter 'max_histroy'. Did you mean"):
        make_policy("MemoizationPolicy", {"max_histroy": 3})
    assert make_policy("RulePolicy", {"core_fallback_threshold": 0.4}).get_params()[
        "core_fallback_threshold"] == 0.4
