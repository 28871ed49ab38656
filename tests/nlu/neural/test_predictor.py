"""DIET's numpy predictor against the torch network it was trained as: same confidences (to
1e-5), same rankings, same tags; and a loaded model parses without importing torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference is the torch network")

from parley.data.formats.nlu_yaml import read_nlu_text  # noqa: E402
from parley.nlu.neural.diet import DIETClassifier  # noqa: E402
from parley.nlu.neural.inputs import feature_table  # noqa: E402
from parley.nlu.neural.response_selector import ResponseSelector  # noqa: E402
from parley.progress import set_quiet  # noqa: E402
from tests.nlu._helpers import fresh, run  # noqa: E402
from tests.nlu.neural.test_diet import TRAVEL, pipeline  # noqa: E402
from tests.nlu.neural.test_response_selector import FAQ  # noqa: E402

TEXTS = ["fly from oslo to rome", "hello", "two pizzas please", "a flight from berlin",
         "get me from paris to oslo please now", "hi", "order one salad", "zzz qqq",
         "from rome to berlin", "hello friend", "", "!!"]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def torch_predictions(component: DIETClassifier, messages: list) -> list[tuple]:
    """Each message alone through the torch network (what DIET's process did before the
    numpy predictor): its confidences and, per tagger, its tags and their confidences."""
    model = component.model_.eval()
    table = feature_table(messages, component._origins())
    out = []
    with torch.inference_mode():
        labels = None
        if component.architecture_.intent_classification:
            labels = model.label_embeddings(torch.from_numpy(component._label_inputs()))
        for i in range(len(messages)):
            batch = table.batch(torch, np.array([i]), tight=True)
            encoded = model.encode(*model.encode_inputs(batch))
            confidences = None
            if labels is not None:
                similarities = model.sentence_embeddings(encoded[batch.sentence_rows]) @ labels.t()
                confidences = torch.softmax(similarities / component.temperature_, dim=1)[0].numpy()
            tags: dict[str, tuple] = {}
            if component.tags_ and table.n_tokens[i] > 0:
                tokens = encoded[batch.token_rows]
                entity_tags = None
                for name in component.tags_:
                    emissions, mask = model.token_grid(model.tag_scores(name, tokens, entity_tags),
                                                       batch)
                    found, confidence = model.crfs[name].decode(emissions, mask)
                    if name == "entity":
                        entity_tags = found.view(-1)[batch.token_grid_index]
                    tags[name] = (found[0].numpy(), confidence[0].numpy())
            out.append((confidences, tags))
    return out


def assert_same_as_torch(component: DIETClassifier, messages: list) -> None:
    expected = torch_predictions(component, messages)
    records = component._records(messages)
    together = component._predictor().predict(records, component.temperature_)
    for i, (confidences, tags) in enumerate(expected):
        alone = component._predictor().predict(records[i:i + 1], component.temperature_)
        for got, row in ((together, i), (alone, 0)):
            if confidences is not None:
                assert got.confidences is not None
                np.testing.assert_allclose(got.confidences[row], confidences, atol=1e-5)
                assert np.argsort(-got.confidences[row], kind="stable").tolist() == \
                    np.argsort(-confidences, kind="stable").tolist()
            for name, (found, scores) in tags.items():
                assert got.tags[name][row if got is alone else i].tolist() == found.tolist()
                np.testing.assert_allclose(got.tag_confidences[name][row if got is alone else i],
                                           scores, atol=1e-5)


def featurized(texts: list[str], upstream: list) -> list:
    messages = fresh(texts)
    for component in upstream:
        component.process(messages)
    return messages


@pytest.mark.parametrize("params", [
    {},
    {"similarity_type": "cosine", "BILOU_flag": False},
    {"use_key_relative_attention": True, "use_value_relative_attention": True,
     "max_relative_position": 2, "unidirectional_encoder": True},
    {"connection_density": 1.0, "number_of_transformer_layers": 1, "transformer_size": 32,
     "number_of_attention_heads": 2, "hidden_layers_sizes": {"text": [64], "label": [16]}},
    {"number_of_transformer_layers": 0, "hidden_layers_sizes": {"text": [48, 24]}},
    {"intent_classification": False},
    {"entity_recognition": False, "use_masked_language_model": True},
])
def test_numpy_predictions_match_the_torch_network(params):
    upstream = pipeline()
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    diet = DIETClassifier(epochs=30, random_seed=3, **params).fit(data)
    assert_same_as_torch(diet, featurized(TEXTS, upstream))


def test_one_message_should_get_the_same_bits_as_through_the_blocks_one_by_one():
    """A parse's sparse inputs go through one gather for all blocks (_OneMessageInputs);
    the block-by-block path batches take must give every number exactly as it."""
    from parley.registry import get_class

    upstream = [*pipeline(), get_class("LexicalSyntacticFeaturizer")()]
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    diet = DIETClassifier(epochs=5, random_seed=3).fit(data)
    predictor = diet._predictor()
    fused = predictor.one_message_inputs
    assert fused is not None
    for text in TEXTS:
        records = diet._records(featurized([text], upstream))
        try:
            got = predictor.predict(records, diet.temperature_)
            predictor.one_message_inputs = None
            expected = predictor.predict(records, diet.temperature_)
        finally:
            predictor.one_message_inputs = fused
        assert got.confidences is not None and expected.confidences is not None
        assert np.array_equal(got.confidences, expected.confidences)
        assert got.tags.keys() == expected.tags.keys()
        for name in got.tags:
            assert np.array_equal(got.tags[name][0], expected.tags[name][0])
            assert np.array_equal(got.tag_confidences[name][0],
                                  expected.tag_confidences[name][0])


@pytest.mark.parametrize("params", [{}, {"use_text_as_label": True},
                                    {"number_of_transformer_layers": 1, "transformer_size": 16,
                                     "number_of_attention_heads": 2}])
def test_response_selector_numpy_predictions_match_the_torch_network(params):
    from parley.registry import get_class

    upstream = [get_class("WhitespaceTokenizer")(), get_class("CountVectorsFeaturizer")()]
    data = read_nlu_text(FAQ)
    run(upstream, data)
    selector = ResponseSelector(epochs=30, **params).fit(data)
    assert_same_as_torch(selector, featurized(["what is your name", "is it sunny", "hi", ""],
                                              upstream))


def test_a_loaded_model_predicts_as_the_trained_one_and_finetunes(tmp_path):
    upstream = pipeline()
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    diet = DIETClassifier(epochs=20, random_seed=5).fit(data)
    diet.save(tmp_path)
    loaded = DIETClassifier.load(tmp_path)
    assert "model_" not in loaded.__dict__  # no torch network until something trains it
    before, after = featurized(TEXTS, upstream), featurized(TEXTS, upstream)
    diet.process(before)
    loaded.process(after)
    for a, b in zip(before, after, strict=True):
        assert a.data["intent_ranking"] == b.data["intent_ranking"]
        assert a.data["entities"] == b.data["entities"]
    # saved again unchanged, the arrays are the same
    loaded.save(tmp_path / "again")
    first, second = np.load(tmp_path / "arrays.npz"), np.load(tmp_path / "again" / "arrays.npz")
    assert sorted(first.files) == sorted(second.files)
    assert all(np.array_equal(first[k], second[k]) for k in first.files)
    # finetuning builds the torch network from the saved weights; predictions follow it
    loaded.finetune(data, 0.5)
    assert "model_" in loaded.__dict__
    assert_same_as_torch(loaded, featurized(TEXTS, upstream))
    finetuned = featurized(TEXTS, upstream)
    loaded.process(finetuned)
    assert any(a.data["intent_ranking"] != b.data["intent_ranking"]
               for a, b in zip(after, finetuned, strict=True))


def test_loading_and_parsing_a_diet_model_does_not_import_torch(tmp_path):
    from parley.model_training import train_nlu

    nlu = tmp_path / "nlu.yml"
    nlu.write_text(TRAVEL, encoding="utf-8")
    config = tmp_path / "config.yml"
    config.write_text(textwrap.dedent("""\
        recipe: default.v1
        language: en
        pipeline:
          - name: WhitespaceTokenizer
          - name: CountVectorsFeaturizer
          - name: DIETClassifier
            epochs: 2
        """), encoding="utf-8")
    model = train_nlu(str(config), str(nlu), str(tmp_path / "models"))
    script = textwrap.dedent(f"""\
        import sys
        from parley.serving.agent import load
        agent = load({str(model)!r})
        result = agent.parse("fly from oslo to rome")
        assert result["intent"]["name"] in {{"book", "order", "greet"}}, result
        agent.parse_batch(["hello", "two pizzas"])
        print("torch" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_long_message_should_attend_in_chunks_with_the_same_result(monkeypatch):
    # issue 22: attention held all heads × T² scores at once (200,000 tokens: 596 GiB)
    from parley.ml import numpy_net

    upstream = pipeline()
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    diet = DIETClassifier(epochs=3, random_seed=3, use_key_relative_attention=True,
                          use_value_relative_attention=True, max_relative_position=3).fit(data)
    text = " ".join(["fly from oslo to rome", "two pizzas please", "hello"] * 40)  # 400 tokens
    records = diet._records(featurized([text], upstream))
    whole = diet._predictor().predict(records, diet.temperature_)
    heads = diet.architecture_.attention_heads
    monkeypatch.setattr(numpy_net, "ATTENTION_ENTRIES", heads * 401 * 37)  # chunks of 37
    chunked = diet._predictor().predict(records, diet.temperature_)
    np.testing.assert_allclose(chunked.confidences, whole.confidences, atol=1e-6)
    assert [t.tolist() for t in chunked.tags["entity"]] == [t.tolist() for t in whole.tags["entity"]]
    np.testing.assert_allclose(chunked.tag_confidences["entity"][0],
                               whole.tag_confidences["entity"][0], atol=1e-5)
