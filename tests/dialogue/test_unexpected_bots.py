"""UnexpecTEDIntentPolicy on a real bot: the moodbot with Rasa 3.6's default policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.dialogue.evaluation import evaluate_test_stories
from parley.serving.agent import load
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.dialogue.helpers import conversation, moodbot_core, predicted

pytestmark = needs_shared_data

BOTS = SHARED_DATA / "bots"
# Rasa 3.6's default policies (rasa/engine/recipes/config_files/default_config.yml), the
# ones `rasa init`'s moodbot trains with: UnexpecTEDIntentPolicy among them.
RASA_DEFAULT_POLICIES = """recipe: default.v1
language: en
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
  - name: UnexpecTEDIntentPolicy
    max_history: 5
    epochs: 100
  - name: TEDPolicy
    max_history: 5
    epochs: 100
    constrain_similarities: true
"""


@pytest.fixture(scope="module")
def moodbot(tmp_path_factory) -> tuple[Path, object]:
    root, model = moodbot_core(tmp_path_factory.mktemp("moodbot"), RASA_DEFAULT_POLICIES)
    return root, load(model)


def test_moodbot_should_pass_its_test_stories_and_its_own_stories_without_warnings(moodbot):
    root, agent = moodbot
    assert [p.name for p in agent.policies] == ["MemoizationPolicy", "RulePolicy",
                                                "UnexpecTEDIntentPolicy", "TEDPolicy"]
    tests = TrainingDataImporter(root / "domain.yml", None, [root / "tests"]).test_stories
    results = evaluate_test_stories(agent.policies, tests, agent.domain)
    assert (sum(r.passed for r in results), len(results)) == (7, 7)
    stories = TrainingDataImporter(root / "domain.yml", None, [root / "data"]).stories
    own = evaluate_test_stories(agent.policies, stories, agent.domain)
    # every history of the stories scores at or above the thresholds it set
    assert all(r.passed for r in own) and not any(r.has_warnings for r in own)


def test_moodbot_should_warn_where_no_story_goes(moodbot):
    _, agent = moodbot
    domain = agent.domain
    unexpected = next(p for p in agent.policies if p.name == "UnexpecTEDIntentPolicy")
    # every story opens with a greeting: a mood first is unlikely
    opening = conversation(domain, ("intent", "mood_great"))
    assert predicted(unexpected.predict(opening, domain), domain) == "action_unlikely_intent"
    greeted = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", "mood_great"))
    assert predicted(unexpected.predict(greeted, domain), domain) is None
