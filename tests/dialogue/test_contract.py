"""One contract check run over every registered policy, on the moodbot-sized fixture."""

from __future__ import annotations

import json

import pytest

from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.base import Policy, unambiguous_lookup
from parley.errors import ConfigError, ModelArchiveError, NotFittedError
from parley.registry import POLICY, get_class, names
from tests.dialogue.helpers import HAPPY_STORY, conversation, small_domain, stories

STORIES = "\nstories:\n" + HAPPY_STORY + """rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
"""


@pytest.fixture(scope="module")
def trained_inputs():
    domain = small_domain()
    story_list, rules = stories(STORIES)
    return domain, generate_trackers(story_list, rules, domain, augmentation_factor=0)


@pytest.mark.parametrize("name", names(POLICY))
def test_policy_should_follow_the_component_contract(name, trained_inputs, tmp_path):
    domain, trackers = trained_inputs
    cls = get_class(name, POLICY)
    assert issubclass(cls, Policy)
    assert not {"save", "load", "code_version"} & set(vars(cls))  # the one template is used
    policy = cls()
    assert policy.get_params() == cls.default_params()  # constructor stores, does no work
    tracker = conversation(domain, "greet")
    with pytest.raises(NotFittedError):
        policy.predict(tracker, domain)
    assert policy.fit(trackers, domain) is policy
    before = policy.predict(tracker, domain)
    policy.save(tmp_path / name)
    after = cls.load(tmp_path / name).predict(tracker, domain)
    assert after.probabilities == before.probabilities
    again = cls().fit(trackers, domain).predict(tracker, domain)
    assert again.probabilities == before.probabilities  # deterministic


@pytest.mark.parametrize("name", names(POLICY))
def test_unknown_policy_parameters_should_list_the_valid_ones(name):
    with pytest.raises(ConfigError, match="has no parameter 'max_histroy'"):
        get_class(name, POLICY).from_params({"max_histroy": 3})


def _damage(directory, what):
    if what == "no params.json":
        (directory / "params.json").unlink()
    elif what == "no lookup.json":
        (directory / "lookup.json").unlink()
    elif what == "truncated lookup.json":
        text = (directory / "lookup.json").read_text()
        (directory / "lookup.json").write_text(text[: len(text) // 2])
    elif what == "lookup.json without its lookup":
        (directory / "lookup.json").write_text("{}")
    elif what == "another component's params":
        params = json.loads((directory / "params.json").read_text())
        params["component"] = "SomethingElse"
        (directory / "params.json").write_text(json.dumps(params))


DAMAGES = ["no params.json", "no lookup.json", "truncated lookup.json",
           "lookup.json without its lookup", "another component's params"]


@pytest.mark.parametrize("what", DAMAGES)
@pytest.mark.parametrize("name", names(POLICY))
def test_damaged_saved_policy_should_raise_model_archive_error_naming_the_file(
        name, what, trained_inputs, tmp_path):
    domain, trackers = trained_inputs
    cls = get_class(name, POLICY)
    cls().fit(trackers, domain).save(tmp_path)
    _damage(tmp_path, what)
    with pytest.raises(ModelArchiveError, match=str(tmp_path)) as info:
        cls.load(tmp_path)
    file = "params.json" if "params" in what else "lookup.json"
    assert file in str(info.value)


def test_a_policy_missing_its_abstract_methods_cannot_be_built():
    class Half(Policy):
        name = "Half"

        def fit(self, trackers, domain):
            return self

    with pytest.raises(TypeError, match="predict"):
        Half()


def test_ambiguous_keys_should_be_dropped_for_good():
    keys = ["a", "b", "a", None, "a", "c"]
    labels = ["x", "y", "z", "w", "x", "v"]
    assert unambiguous_lookup(keys, labels) == {"b": "y", "c": "v"}
