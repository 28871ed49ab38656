"""The recipe checks a pipeline from what each component needs and provides."""

from __future__ import annotations

import pytest

from parley.data.config import read_config_text
from parley.errors import ConfigError
from parley.recipe import build_recipe

MODULE = '''
from parley.component import DENSE_FEATURES, ENTITIES, NLUComponent, TOKENS


class Base(NLUComponent):
    def fit(self, training_data):
        self.fitted_ = True
        return self

    def process(self, messages):
        pass

    def _state(self):
        return {}, {}

    def _set_state(self, state, arrays):
        self.fitted_ = True


class NeedsTokens(Base):
    needs = (TOKENS,)


class NeedsDense(Base):
    needs = (DENSE_FEATURES,)


class Tokenizer(Base):
    provides = (TOKENS,)


class NeedsEntities(Base):
    needs = (ENTITIES,)
'''


@pytest.fixture
def custom(tmp_path, monkeypatch):
    (tmp_path / "h3_order_pkg.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "h3_order_pkg"


def recipe(text: str):
    return build_recipe(read_config_text(text, "config.yml"), "nlu")


def test_a_custom_component_needing_tokens_should_need_a_tokenizer_before_it(custom):
    with pytest.raises(ConfigError, match=r"config.yml:3: h3_order_pkg.NeedsTokens needs "
                                          r"tokens, but no tokenizer comes before it. Put e.g."):
        recipe(f"pipeline:\n- name: KeywordIntentClassifier\n- name: {custom}.NeedsTokens\n")
    recipe(f"pipeline:\n- name: {custom}.Tokenizer\n- name: {custom}.NeedsTokens\n")


def test_a_need_without_a_stock_remedy_should_name_what_provides_it(custom):
    with pytest.raises(ConfigError, match=r"config.yml:3: h3_order_pkg.NeedsDense needs dense "
                                          r"features \(a featurizer such as "
                                          r"LanguageModelFeaturizer\) before it, and no "
                                          r"component before it provides that."):
        recipe(f"pipeline:\n- name: WhitespaceTokenizer\n- name: {custom}.NeedsDense\n")
    recipe("pipeline:\n- name: RegexEntityExtractor\n"
           f"- name: {custom}.NeedsEntities\n")


@pytest.mark.parametrize("pipeline, message", [
    ("- name: CountVectorsFeaturizer\n",
     "config.yml:2: CountVectorsFeaturizer needs tokens, but no tokenizer comes before it."),
    ("- name: WhitespaceTokenizer\n- name: DIETClassifier\n",
     "config.yml:3: DIETClassifier needs features, but no featurizer comes before it."),
    ("- name: WhitespaceTokenizer\n- name: CountVectorsFeaturizer\n- name: ResponseSelector\n"
     "- name: FallbackClassifier\n",
     "config.yml:5: FallbackClassifier needs an intent classifier before it."),
])
def test_registered_components_should_be_checked_from_their_declarations(pipeline, message):
    with pytest.raises(ConfigError) as info:
        recipe("pipeline:\n" + pipeline)
    assert message in str(info.value)


def test_needs_may_follow_the_parameters():
    dense = ("pipeline:\n- name: WhitespaceTokenizer\n- name: CountVectorsFeaturizer\n"
             "- name: CRFEntityExtractor\n  features: [[], [text_dense_features], []]\n")
    with pytest.raises(ConfigError, match=r"config.yml:4: CRFEntityExtractor needs dense "
                                          r"features \(a featurizer such as "
                                          r"LanguageModelFeaturizer\) before it"):
        recipe(dense)
    recipe(dense.replace("text_dense_features", "low"))


def test_a_policy_is_known_by_its_kind_not_its_name(custom):
    with pytest.raises(ConfigError, match="config.yml:2: 'TEDPolicy' is a policy but stands "
                                          "in the pipeline"):
        recipe("pipeline:\n- name: TEDPolicy\n")
    with pytest.raises(ConfigError, match="config.yml:3: 'CountVectorsFeaturizer' is an NLU "
                                          "component but stands under 'policies:'"):
        build_recipe(read_config_text(
            "policies:\n- name: RulePolicy\n- name: CountVectorsFeaturizer\n", "config.yml"),
            "core")
