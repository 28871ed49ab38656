"""Mistakes users make, each a tiny project; ``docs/errors.md`` shows what Parley says.

The table in docs/errors.md is generated from these cases by running the real
``parley data validate`` (``python -m parley.cli.error_cases > docs/errors.md``), and a
test checks that the page still matches, so the documentation cannot drift.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from parley.starter import _TEMPLATE, STARTER_FILES

# (what the user did, file to change, text to find, text to put instead)
CASES: list[tuple[str, str, str, str]] = [
    ("YAML: a tab used for indentation", "data/nlu.yml", "  - intent: goodbye", "\t- intent: goodbye"),
    ("YAML: an unclosed quote", "domain.yml", '"Done, I will remind you."', '"Done, I will remind you.'),
    ("YAML: the same key twice", "domain.yml", "entities:", "slots: {}\nentities:"),
    ("YAML: a value its tag cannot hold", "domain.yml", "entities:", "x: !!float many\nentities:"),
    ("YAML: nesting 200 levels deep", "config.yml", "language: en",
     "language: " + "[" * 200 + "]" * 200),
    ("YAML: an alias bomb (billion laughs)", "data/stories.yml", 'version: "3.1"',
     'version: "3.1"\nl0: &l0 [x, x, x, x, x, x, x, x, x]\n'
     + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))),
    ("NLU: misspelt `examples`", "data/nlu.yml", "  - intent: thank\n    examples:",
     "  - intent: thank\n    exampels:"),
    ("NLU: an example line without `- `", "data/nlu.yml", "      - bye bye", "      bye bye"),
    ("NLU: a broken entity annotation", "data/nlu.yml", "[fern](plant)", "[fern](plant"),
    ("NLU: invalid JSON in an annotation", "data/nlu.yml", "[fern](plant)",
     '[fern]{"entity": plant}'),
    ("NLU: an entity not in the domain", "data/nlu.yml", "[ficus](plant)", "[ficus](tree)"),
    ("NLU: an intent not in the domain", "data/nlu.yml", "- intent: thank\n", "- intent: thanks\n"),
    ("Domain: unknown top-level key", "domain.yml", "responses:", "response:"),
    ("Domain: unknown slot type", "domain.yml", "type: text", "type: string"),
    ("Domain: a slot without mappings", "domain.yml",
     "    mappings:\n      - type: from_entity\n        entity: plant\n", ""),
    ("Domain: unknown mapping type", "domain.yml", "type: from_entity", "type: from_entities"),
    ("Domain: unknown key in a response", "domain.yml", "  utter_reminder_set:\n    - text:",
     "  utter_reminder_set:\n    - txt:"),
    ("Domain: a newer format version", "domain.yml", 'version: "3.1"', 'version: "4.0"'),
    ("Stories: misspelt step key", "data/stories.yml", "- action: utter_reminder_set",
     "- actoin: utter_reminder_set"),
    ("Stories: an action not in the domain", "data/stories.yml", "action: utter_no_reminder",
     "action: utter_no_remainder"),
    ("Stories: a slot not in the domain", "data/stories.yml", "- plant: cactus\n      - action",
     "- plants: cactus\n      - action"),
    ("Stories: an intent not in the domain", "data/rules.yml", "intent: bot_challenge",
     "intent: bot_challenge_me"),
    ("Stories: two stories, two answers to one history (a warning)", "data/stories.yml",
     "      - intent: deny\n", "      - intent: affirm\n"),
    ("Rules: a checkpoint in a rule", "data/rules.yml", "      - intent: goodbye\n",
     "      - checkpoint: start\n      - intent: goodbye\n"),
    ("Config: misspelt `pipeline`", "config.yml", "pipeline:", "pipline:"),
    ("Config: a component without `name`", "config.yml", "  - name: RegexFeaturizer",
     "  - RegexFeaturizer: {}"),
    ("Config: a Rasa 2 policy that Rasa 3 removed", "config.yml", "  - name: RulePolicy",
     "  - name: RulePolicy\n  - name: FormPolicy"),
    ("Config: a misspelt parameter (a warning; training goes on)", "config.yml",
     "  - name: MemoizationPolicy", "  - name: MemoizationPolicy\n    max_histroy: 3"),
    ("Config: a number out of range", "config.yml", "    max_ngram: 4", "    max_ngram: 0"),
    ("Config: a number in quotes", "config.yml", "    C: 10", "    C: '10'"),
    ("Config: `no` for a boolean", "config.yml", "    tfidf: true", "    tfidf: no"),
    ("Config: an unknown choice", "config.yml", "    analyzer: char_wb", "    analyzer: chars"),
    ("Config: `featurizers` naming no featurizer", "config.yml", "    tfidf: true",
     "    tfidf: true\n    featurizers: [nope]"),
]


def run_case(file: str, old: str, new: str) -> str:
    """The first error (or warning) line ``parley data validate`` prints for the change."""
    from parley.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in STARTER_FILES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text((_TEMPLATE / name).read_text())
        target = root / file
        text = target.read_text()
        if old not in text:
            raise ValueError(f"case text {old!r} not found in {file}")
        target.write_text(text.replace(old, new, 1))
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main(["data", "validate"])
        finally:
            os.chdir(cwd)
    lines = err.getvalue().splitlines() + out.getvalue().splitlines()
    for line in lines:
        if " error: " in line or line.startswith(("error: ", "warning: ")) or " warning: " in line:
            return line
    return "(no message)"


def render() -> str:
    rows = ["# What Parley says when a project has a mistake", "",
            "Each row changes one thing in the starter project (`parley init`) and shows the first",
            "message `parley data validate` prints. Generated by",
            "`python -m parley.cli.error_cases > docs/errors.md`; a test keeps it true.", "",
            "| mistake | file | message |", "|---|---|---|"]
    for title, file, old, new in CASES:
        message = run_case(file, old, new).replace("|", "\\|")
        rows.append(f"| {title} | `{file}` | {message} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
