from __future__ import annotations

import pytest

from parley.data.config import ComponentConfig, read_config, read_config_text
from parley.errors import SchemaError
from tests.conftest import SHARED_DATA, needs_shared_data


def test_should_read_pipeline_and_policies_with_parameters():
    config = read_config_text(
        "recipe: default.v1\nlanguage: de\nassistant_id: bot\npipeline:\n"
        "- name: CountVectorsFeaturizer\n  analyzer: char_wb\n  max_ngram: 4\n"
        "policies:\n- name: RulePolicy\n"
    )
    assert config.language == "de"
    assert config.assistant_id == "bot"
    expected = ComponentConfig("CountVectorsFeaturizer", {"analyzer": "char_wb", "max_ngram": 4})
    assert config.pipeline == [expected]
    assert config.pipeline[0].line == 5
    assert config.filled_from_default == []


def test_should_fill_missing_parts_from_the_default_and_say_so():
    config = read_config_text("language: en\npipeline:\npolicies:\n")
    assert config.filled_from_default == ["pipeline", "policies"]
    assert config.pipeline and config.policies
    assert any("no pipeline" in notice for notice in config.notices())


@pytest.mark.parametrize(
    "text, message",
    [
        ("pipline: []\n", "c.yml:1: unknown key 'pipline' in config.yml. Did you mean 'pipeline'?"),
        ("pipeline:\n- analyzer: word\n", "c.yml:2: an entry of 'pipeline' has no 'name'."),
        ("recipe: graph.v1\ntrain_schema:\n  nodes: {}\n",
         "c.yml:1: the recipe 'graph.v1' is not supported: Parley builds the training graph "
         "itself"),
        ("pipeline: WhitespaceTokenizer\n", "c.yml:1: 'pipeline' must be a list (- item), found the string"),
    ],
)
def test_should_reject_bad_configs(text, message):
    with pytest.raises(SchemaError) as info:
        read_config_text(text, "c.yml")
    assert str(info.value).startswith(message)


@needs_shared_data
def test_every_shared_config_should_load():
    for path in sorted(SHARED_DATA.rglob("config*.yml")):
        config = read_config(path)
        assert config.pipeline and config.policies, path


def test_graph_recipe_should_name_the_recipe_and_what_is_supported():
    text = "recipe: graph.v1\ntrain_schema:\n  nodes: {}\npredict_schema:\n  nodes: {}\n"
    with pytest.raises(SchemaError) as info:
        read_config_text(text, "c.yml")
    assert "unknown key" not in str(info.value)
    assert info.value.line == 1
    assert "Use recipe: default.v1" in str(info.value)


@pytest.mark.parametrize("language", ["en", "EN", "en-GB", "en_US"])
def test_an_english_default_pipeline_should_have_the_static_embeddings(language):
    config = read_config_text(f"language: {language}\n")
    names = [c.name for c in config.pipeline]
    assert "StaticEmbeddingFeaturizer" in names


@pytest.mark.parametrize("language", ["de", "fr", "zh", "eng"])
def test_a_default_pipeline_in_another_language_should_leave_the_english_table_out(language):
    config = read_config_text(f"language: {language}\n")
    assert "StaticEmbeddingFeaturizer" not in [c.name for c in config.pipeline]
    classifier = next(c for c in config.pipeline if c.name == "LogisticRegressionClassifier")
    assert classifier.params["featurizers"] == ["CountVectorsFeaturizer"]
    assert "dense_norm" not in classifier.params
