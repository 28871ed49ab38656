"""Parameter values checked when the recipe builds the graph, with the config line."""

from __future__ import annotations

import warnings

import pytest

from parley.data.config import read_config_text
from parley.errors import ConfigError, ParleyWarning
from parley.recipe import build_recipe, config_issues
from tests.conftest import SHARED_DATA, needs_shared_data

PIPELINE = """\
pipeline:
- name: WhitespaceTokenizer
- name: RegexFeaturizer
- name: CountVectorsFeaturizer
- name: LogisticRegressionClassifier
- name: DIETClassifier
- name: ResponseSelector
- name: KeywordIntentClassifier
policies:
- name: MemoizationPolicy
- name: RulePolicy
"""
LINES = {"WhitespaceTokenizer": 2, "RegexFeaturizer": 3, "CountVectorsFeaturizer": 4,
         "LogisticRegressionClassifier": 5, "DIETClassifier": 6, "ResponseSelector": 7,
         "KeywordIntentClassifier": 8, "MemoizationPolicy": 10, "RulePolicy": 11}


def _with(component: str, key: str, value: str) -> tuple[str, int]:
    """The config with ``key: value`` under ``component``, and the line of that key."""
    line = LINES[component]
    lines = PIPELINE.splitlines()
    lines.insert(line, f"  {key}: {value}")
    return "\n".join(lines) + "\n", line + 1


# The values the issue lists: each refused at build time, at the line of its key.
@pytest.mark.parametrize("component, key, value, says", [
    ("DIETClassifier", "epochs", "-1", "epochs must be a whole number from 1 to 100 000, not -1"),
    ("LogisticRegressionClassifier", "max_iter", "0", "max_iter must be a whole number"),
    ("LogisticRegressionClassifier", "C", '"ten"', "C must be a finite number > 0, not 'ten'"),
    ("DIETClassifier", "batch_size", "[64, 32, 1]", "batch_size must be"),
    ("CountVectorsFeaturizer", "analyzer", "letters",
     "analyzer must be one of word, char, char_wb, not 'letters'"),
    ("DIETClassifier", "ranking_length", "'10'", "write the whole number without quotes"),
    ("KeywordIntentClassifier", "case_sensitive", '"False"', "case_sensitive must be true or false"),
    ("RegexFeaturizer", "use_regexes", "no", "yes/no/on/off as text"),
    ("DIETClassifier", "learning_rate", ".inf", "learning_rate must be a finite number > 0"),
    ("DIETClassifier", "number_of_attention_heads", "0", "number_of_attention_heads must be"),
    ("CountVectorsFeaturizer", "max_ngram", "1000000000000", "max_ngram must be a whole number"),
    ("DIETClassifier", "number_of_transformer_layers", "1e12",
     "number_of_transformer_layers must be"),
    ("DIETClassifier", "number_of_transformer_layers", "1.0e+12",
     "number_of_transformer_layers must be"),
    ("ResponseSelector", "drop_rate", "1", "drop_rate must be a finite number >= 0 and < 1"),
    ("ResponseSelector", "retrieval_intent", "''", "retrieval_intent must be"),
    ("MemoizationPolicy", "max_history", "-2", "max_history must be"),
    ("RulePolicy", "core_fallback_threshold", "1.5", "core_fallback_threshold must be"),
])
def test_bad_values_should_be_refused_at_the_line_of_their_key(
        component: str, key: str, value: str, says: str) -> None:
    text, line = _with(component, key, value)
    config = read_config_text(text, "config.yml")
    with pytest.raises(ConfigError) as info:
        build_recipe(config)
    assert str(info.value).startswith(f"config.yml:{line}: {component}: {key} ")
    assert says in str(info.value)
    issues = config_issues(config)
    assert [(i.level, i.line) for i in issues] == [("error", line)]


def test_heads_that_do_not_divide_the_size_should_be_refused() -> None:
    text, line = _with("DIETClassifier", "transformer_size", "30")
    config = read_config_text(text, "config.yml")
    with pytest.raises(ConfigError, match=rf"config.yml:{line}: DIETClassifier: transformer_size "
                                          r"\(30\) must be a multiple of number_of_attention_heads"):
        build_recipe(config)


def test_featurizers_must_name_featurizers_before_the_component() -> None:
    text, line = _with("DIETClassifier", "featurizers", "[nope]")
    with pytest.raises(ConfigError) as info:
        build_recipe(read_config_text(text, "config.yml"))
    assert str(info.value) == (
        f"config.yml:{line}: DIETClassifier: featurizers names 'nope', which is not a featurizer "
        "before it in the pipeline; those are: RegexFeaturizer, CountVectorsFeaturizer.")
    text, _ = _with("DIETClassifier", "featurizers", "[CountVectorsFeaturizer]")
    build_recipe(read_config_text(text, "config.yml"))


def test_unknown_key_should_warn_with_its_line_and_be_dropped() -> None:
    text, line = _with("CountVectorsFeaturizer", "analyser", "char_wb")
    with pytest.warns(ParleyWarning) as caught:
        recipe = build_recipe(read_config_text(text, "config.yml"))
    [warning] = [w.message for w in caught]
    assert str(warning).startswith(f"config.yml:{line}: CountVectorsFeaturizer has no parameter "
                                   "'analyser'. Did you mean 'analyzer'?")
    assert str(warning).endswith("Parley ignores it, as Rasa does.")
    node = next(n for n in recipe.nlu if n.component == "CountVectorsFeaturizer")
    assert node.params == {}


def test_unknown_key_should_be_an_error_when_strict() -> None:
    text, line = _with("RulePolicy", "core_fallback_treshold", "0.3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=rf"config.yml:{line}: RulePolicy has no parameter "
                                              r"'core_fallback_treshold'. Did you mean "
                                              r"'core_fallback_threshold'\?.*strict mode"):
            build_recipe(read_config_text(text, "config.yml"), strict=True)


def test_config_issues_should_list_every_finding() -> None:
    config = read_config_text(
        "pipeline:\n- name: WhitespaceTokenizer\n- name: SpacyNLP\n"
        "- name: CountVectorsFeaturizer\n  token_pattern: x\n  max_ngram: 0\n"
        "policies:\n- name: FormPolicy\n- name: RulePolicy\n  restrict_rules: yes\n",
        "config.yml")
    issues = config_issues(config)
    assert [(i.level, i.line) for i in issues] == [
        ("error", 3), ("warning", 5), ("error", 6), ("error", 8), ("error", 10)]
    assert "Parley does not have yet" in issues[0].message
    assert "FormPolicy" in issues[3].message


@needs_shared_data
def test_formbot_config_should_build_with_a_warning() -> None:
    config_path = SHARED_DATA / "bots" / "rasa-example-formbot" / "config-portable.yml"
    from parley.data.config import read_config

    config = read_config(config_path)
    issues = config_issues(config, "nlu")
    assert [(i.level, i.message.split(".")[0]) for i in issues] == [
        ("warning", "CountVectorsFeaturizer has no parameter 'token_pattern'")]
    with pytest.warns(ParleyWarning, match="token_pattern"):
        build_recipe(config, "nlu")
