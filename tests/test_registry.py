"""config.yml names resolve to classes of the right kind, with helpful errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parley.component import NLUComponent
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.errors import ConfigError
from parley.registry import (
    ENTRIES, NLU, NOT_YET, POLICY, REMOVED_IN_RASA_3, build, get_class, kind_of, names,
)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_entry_should_import_to_a_class_of_its_name_and_kind(name):
    cls = get_class(name)
    assert cls.name == name
    base = NLUComponent if ENTRIES[name].kind == NLU else Policy
    assert issubclass(cls, base)
    assert not getattr(cls, "__abstractmethods__", None)


RASA_3_POLICIES = ["MemoizationPolicy", "AugmentedMemoizationPolicy", "RulePolicy", "TEDPolicy",
                   "UnexpecTEDIntentPolicy"]


def test_kinds_should_come_from_the_table_not_the_name():
    assert kind_of("RulePolicy") == POLICY and kind_of("DIETClassifier") == NLU
    assert kind_of("TEDPolicy") == POLICY and kind_of("SpacyNLP") == NLU
    assert kind_of("MappingPolicy") == POLICY and kind_of("NoSuchThing") is None
    assert not set(NOT_YET) & set(ENTRIES) and not set(REMOVED_IN_RASA_3) & set(ENTRIES)
    assert names(POLICY) == RASA_3_POLICIES


def test_a_name_of_the_other_kind_should_say_where_it_belongs():
    with pytest.raises(ConfigError, match="'RulePolicy' is a policy, not an NLU component; "
                                          "it belongs under 'policies:'"):
        get_class("RulePolicy", NLU)
    with pytest.raises(ConfigError, match="under 'pipeline:'"):
        get_class("CountVectorsFeaturizer", POLICY)


def test_every_rasa_3_policy_should_be_there():
    assert not [name for name, kind in NOT_YET.items() if kind == POLICY]
    assert all(get_class(name, POLICY).name == name for name in RASA_3_POLICIES)


def test_known_rasa_component_not_yet_available_should_say_so():
    with pytest.raises(ConfigError, match="'SpacyNLP' is a Rasa component Parley does not "
                                          "have yet; available: .*CountVectorsFeaturizer"):
        get_class("SpacyNLP", NLU)


def test_unknown_names_should_suggest_the_closest_of_their_kind():
    with pytest.raises(ConfigError, match=r"unknown policy 'RulesPolicy'\. Did you mean "
                                          r"'RulePolicy'\? Available: MemoizationPolicy"):
        get_class("RulesPolicy", POLICY)
    with pytest.raises(ConfigError, match="Did you mean 'CountVectorsFeaturizer'.*Available"):
        get_class("CountVectorFeaturizer", NLU)


def test_removed_rasa_2_policy_should_name_its_replacement():
    with pytest.raises(ConfigError, match="removed in Rasa 3.0; use rules"):
        get_class("MappingPolicy", POLICY)
    with pytest.raises(ConfigError, match="removed in Rasa 3.0; use rules"):
        get_class("MappingPolicy")


def test_build_should_take_config_params_and_reject_unknown_ones():
    policy = build("MemoizationPolicy", {"max_history": 3}, POLICY)
    assert isinstance(policy, MemoizationPolicy) and policy.max_history == 3
    with pytest.raises(ConfigError, match="has no parameter 'max_histroy'. Did you mean"):
        build("MemoizationPolicy", {"max_histroy": 3}, POLICY)
    assert build("RulePolicy", {"core_fallback_threshold": 0.4}).get_params()[
        "core_fallback_threshold"] == 0.4


def test_importing_the_registry_should_stay_light():
    code = ("import sys, parley.registry; print(any(m.startswith(('scipy', 'numpy', "
            "'parley.nlu.', 'parley.dialogue')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


CUSTOM = '''
from parley.component import NLUComponent, TOKENS
from parley.dialogue.policies.base import Policy


def not_a_class():
    pass


class PlainClass:
    pass


class NoProcess(NLUComponent):
    def fit(self, training_data):
        return self


class Fine(NLUComponent):
    needs = (TOKENS,)

    def fit(self, training_data):
        self.fitted_ = True
        return self

    def process(self, messages):
        pass

    def _state(self):
        return {}, {}

    def _set_state(self, state, arrays):
        self.fitted_ = True


class MyPolicy(Policy):
    def fit(self, trackers, domain):
        return self

    def predict(self, tracker, domain, rule_only_data=None):
        raise NotImplementedError

    def _state(self):
        return {}, {}

    def _set_state(self, state, arrays):
        pass


class TakesArgs(Fine):
    def __init__(self, size, *rest, **more):
        self.size = size
'''


@pytest.fixture
def custom(tmp_path, monkeypatch):
    package = tmp_path / "h3_custom_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "things.py").write_text(CUSTOM)
    (package / "broken.py").write_text("import h3_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "h3_custom_pkg"


def test_a_custom_component_following_the_contract_should_load(custom):
    cls = get_class(f"{custom}.things.Fine", NLU)
    assert cls.__name__ == "Fine" and cls.name == "Fine"
    assert kind_of(f"{custom}.things.Fine") == NLU
    assert kind_of(f"{custom}.things.MyPolicy") == POLICY
    assert get_class(f"{custom}.things.MyPolicy", POLICY).__name__ == "MyPolicy"


@pytest.mark.parametrize("path, message", [
    ("h3_nowhere.mod.Thing", "the component 'h3_nowhere.mod.Thing' cannot be imported: "
                             "No module named 'h3_nowhere'"),
    ("{pkg}.broken.Thing", "cannot be imported: No module named 'h3_no_such_dependency'"),
    ("{pkg}.things.Missing", "the module '{pkg}.things' has no 'Missing'"),
    ("{pkg}.things.not_a_class", "'{pkg}.things.not_a_class' is a function, not a class"),
    ("{pkg}.things.PlainClass", "does not follow Parley's component contract: it must "
                                "subclass parley.component.NLUComponent"),
    ("{pkg}.things.NoProcess", "'{pkg}.things.NoProcess' does not implement _set_state, "
                               "_state, process, which NLUComponent requires"),
    ("{pkg}.things.TakesArgs", "takes size, rest, more in __init__ without a default (or as "
                               "*args / **kwargs)"),
])
def test_a_custom_component_breaking_the_contract_should_say_what_is_missing(
        custom, path, message):
    with pytest.raises(ConfigError) as info:
        get_class(path.format(pkg=custom), NLU)
    assert message.format(pkg=custom) in str(info.value)


def test_a_custom_policy_in_the_pipeline_should_be_refused(custom):
    with pytest.raises(ConfigError, match="must subclass parley.component.NLUComponent"):
        get_class(f"{custom}.things.MyPolicy", NLU)
