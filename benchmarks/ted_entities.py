"""CPU per TED prediction with its entity head: the numpy head against the torch one.

    PYTHONPATH=. python benchmarks/ted_entities.py [--repeats N] [--predictions N]

Trains the small cuisine project of ``tests/training/test_e2e_entities.py`` (the real
pipeline: whitespace tokens, CountVectors; TEDPolicy tags cuisines in ``user:`` texts),
loads it, and times TED's prediction from a user text (its entity head runs) one message
at a time, warm: with the numpy head prediction uses, and with the torch head the model
was trained as (``predict_entity_tags``, the head before the numpy port) put in its place.
The two alternate ``--repeats`` times; the table shows the median CPU time
(``time.process_time``) per prediction and per head call. The dialogue part runs in numpy
in both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEXTS = ["I could go for pizza tonight", "some sushi would be great", "I could go for tacos",
         "not hungry at all", "pizza"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--predictions", type=int, default=500)
    args = parser.parse_args()

    import os

    from parley.data.events import ActionExecuted, UserUttered
    from parley.data.tracker import DialogueStateTracker
    from parley.dialogue.neural.entities import predict_entity_tags
    from parley.ml.torch_env import prediction_threads
    from parley.model_training import train
    from parley.progress import set_quiet
    from parley.serving.agent import load
    from tests.training.test_e2e_entities import CONFIG, DOMAIN, NLU, STORIES

    set_quiet(True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        for name, text in [("domain.yml", DOMAIN), ("config.yml", CONFIG),
                           ("data/nlu.yml", NLU), ("data/stories.yml", STORIES)]:
            (root / name).write_text(text, encoding="utf-8")
        os.environ["PARLEY_CACHE_DIR"] = str(root / "cache")
        result = train(str(root / "domain.yml"), str(root / "config.yml"),
                       [str(root / "data")], str(root / "models"))
        agent = load(result.model)
    [ted] = agent.policies
    domain, featurize = agent.domain, agent.text_featurizer
    trackers = []
    for text in TEXTS:
        tracker = DialogueStateTracker.from_domain("t", domain)
        for event in (ActionExecuted(action_name="action_listen"),
                      UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0}),
                      ActionExecuted(action_name="utter_greet"),
                      ActionExecuted(action_name="action_listen"),
                      UserUttered(text=text, intent=agent.parse(text)["intent"])):
            tracker.update(event)
        trackers.append(tracker)
    # (the torch network first: building it makes the policy remake its predictor)
    torch_module = ted.model_.entities.eval()
    predictor = ted._predictor()
    numpy_head = predictor.entities
    head_calls = [0.0]

    class TorchHead:  # the torch head, called as the numpy one is
        token_width = numpy_head.token_width

        def __call__(self, dialogue, tokens):
            with prediction_threads(1):
                return predict_entity_tags(torch_module, dialogue, tokens)

    def timed(head):
        def call(dialogue, tokens):
            start = time.process_time()
            out = head(dialogue, tokens)
            head_calls[0] += time.process_time() - start
            return out
        call.token_width = head.token_width
        return call

    figures: dict[str, list[tuple[float, float]]] = {"numpy": [], "torch": []}
    for _ in range(args.repeats):
        for name, head in [("numpy", numpy_head), ("torch", TorchHead())]:
            predictor.entities = timed(head)
            for tracker in trackers:  # warm
                ted.predict_with_texts(tracker, domain, featurize=featurize)
            head_calls[0] = 0.0
            start, done, tagged = time.process_time(), 0, 0
            while done < args.predictions:
                for tracker in trackers:
                    prediction = ted.predict_with_texts(tracker, domain, featurize=featurize)
                    tagged += bool(prediction.optional_events)
                    done += 1
            cpu = time.process_time() - start
            assert tagged, "TED predicted from no text: its entity head did not run"
            figures[name].append((cpu / done * 1e3, head_calls[0] / max(tagged, 1) * 1e3))
    predictor.entities = numpy_head
    print("| entity head | CPU ms per prediction | CPU ms per head call |")
    print("|---|---|---|")
    for name, rows in figures.items():
        print(f"| {name} | {statistics.median(r[0] for r in rows):.3f} "
              f"| {statistics.median(r[1] for r in rows):.3f} |")


if __name__ == "__main__":
    main()
