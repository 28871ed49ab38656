"""``parley visualize``: stories merged into one graph, written as HTML or DOT."""

from __future__ import annotations

import json
import re

import pytest

from parley.cli.main import main
from parley.data.formats.story_yaml import read_stories
from parley.dialogue.story_graph import build_story_graph, to_dot, to_html
from tests.conftest import SHARED_DATA, needs_shared_data

STORIES = """stories:
- story: happy
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_great
  - action: utter_happy
- story: sad
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_unhappy
  - action: utter_cheer_up
  - checkpoint: check_help
- story: helped
  steps:
  - checkpoint: check_help
  - or:
    - intent: affirm
    - intent: thanks
  - action: utter_happy
- story: booked
  steps:
  - intent: book
    entities:
    - city: Paris
  - action: booking_form
  - active_loop: booking_form
  - slot_was_set:
    - city: Paris
  - active_loop: null
  - bot: "Booked </script>!"
"""


def _graph(max_history=2, examples=None):
    return build_story_graph(read_stories(STORIES).stories, max_history, examples)


def _edges(graph):
    label = {n.id: n.label for n in graph.nodes}
    return {(label[a], label[b]) for a, b in graph.edges}


def test_graph_should_share_the_steps_stories_have_in_common():
    graph = _graph()
    assert graph.labels().count("greet") == 1 and graph.labels().count("utter_greet") == 1
    edges = _edges(graph)
    assert {("START", "greet"), ("greet", "utter_greet"), ("utter_greet", "mood_great"),
            ("utter_greet", "mood_unhappy"), ("utter_happy", "END")} <= edges
    # utter_happy after mood_great and after affirm / thanks: different histories, 3 nodes
    assert graph.labels().count("utter_happy") == 3


def test_graph_should_join_stories_at_their_checkpoints_and_branch_at_or():
    edges = _edges(_graph())
    assert ("utter_cheer_up", "check_help") in edges
    assert {("check_help", "affirm"), ("check_help", "thanks"),
            ("affirm", "utter_happy"), ("thanks", "utter_happy")} <= edges
    assert ("check_help", "END") not in edges and ("utter_cheer_up", "END") not in edges


def test_graph_should_label_entities_slots_loops_and_bot_texts():
    labels = _graph().labels()
    assert "book[city]" in labels and 'slots: city="Paris"' in labels
    assert "active_loop: booking_form" in labels and "active_loop: null" in labels
    assert '"Booked </script>!"' in labels


def test_graph_should_merge_more_with_a_shorter_history_and_show_examples():
    assert _graph(max_history=1).labels().count("utter_happy") == 1
    assert _graph(max_history=3).labels().count("utter_greet") == 1
    graph = _graph(examples={"greet": "hello there"})
    assert "hello there" in graph.labels() and "greet" not in graph.labels()
    with pytest.raises(ValueError, match="at least 1"):
        _graph(max_history=0)


def test_html_and_dot_should_hold_the_whole_graph():
    graph = _graph()
    page = to_html(graph)
    data = json.loads(re.search(r"const graph = (.*);\n", page).group(1).replace("<\\/", "</"))
    assert len(data["nodes"]) == len(graph.nodes) and len(data["edges"]) == len(graph.edges)
    assert page.count("</script>") == 3  # the label's "</script>" cannot end the script
    dot = to_dot(graph)
    assert dot.startswith("digraph stories {") and dot.count(" -> ") == len(graph.edges)
    assert '"\\"Booked </script>!\\""' in dot


def test_visualize_should_write_the_page_and_name_bad_input(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stories.yml").write_text(STORIES)
    monkeypatch.chdir(tmp_path)
    assert main(["visualize"]) == 0
    assert "4 stories drawn as" in capsys.readouterr().out
    assert "dagre-d3" in (tmp_path / "graph.html").read_text()
    assert main(["visualize", "--out", "g/stories.dot", "--max-history", "1"]) == 0
    assert (tmp_path / "g" / "stories.dot").read_text().startswith("digraph")
    assert main(["visualize", "-s", "missing"]) == 1
    assert "'missing' given to -s/--stories does not exist" in capsys.readouterr().err
    assert main(["visualize", "-u", "gone.yml"]) == 1  # (it said "e.g. --data data")
    err = capsys.readouterr().err
    assert "'gone.yml' given to -u/--nlu does not exist" in err and "--data" not in err
    (tmp_path / "rules.yml").write_text("rules:\n- rule: r\n  steps:\n  - intent: a\n"
                                        "  - action: utter_a\n")
    assert main(["visualize", "-s", "rules.yml"]) == 1
    assert "no stories found in rules.yml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["visualize", "--max-history", "0"])


@needs_shared_data
def test_visualize_should_draw_a_real_bot_with_its_nlu_examples(tmp_path, monkeypatch):
    data = SHARED_DATA / "bots" / "financial-demo" / "data"
    monkeypatch.chdir(tmp_path)
    assert main(["visualize", "-s", str(data), "-u", str(data), "--out", "g.dot"]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert dot.count("->") > 50 and "transfer_money_form" in dot


def test_graph_should_read_checkpoints_in_a_row_as_alternatives():
    # Two checkpoints in a row: the story ends at (or starts from) either, as in training
    stories = read_stories("""stories:
- story: asks
  steps:
  - intent: greet
  - action: utter_greet
  - checkpoint: left
  - checkpoint: right
- story: goes on
  steps:
  - checkpoint: left
  - checkpoint: right
  - intent: bye
  - action: utter_bye
""").stories
    edges = _edges(build_story_graph(stories))
    assert {("utter_greet", "left"), ("utter_greet", "right"),
            ("left", "bye"), ("right", "bye")} <= edges
    assert ("left", "right") not in edges and ("START", "left") not in edges


def test_dot_should_write_unicode_labels_as_themselves():
    # Graphviz knows no \\u escapes: "\\u00e9" would be drawn as the letters u00e9
    stories = read_stories('stories:\n- story: s\n  steps:\n  - user: "héllo ünï"\n'
                           '  - bot: "ça va 👋"\n').stories
    dot = to_dot(build_story_graph(stories))
    assert '"\\"héllo ünï\\""' in dot and '"\\"ça va 👋\\""' in dot and "\\u" not in dot


def test_visualize_should_draw_test_stories_but_not_their_rules(tmp_path, monkeypatch, capsys):
    # a test_ file holds stories too; `-s tests/test_stories.yml` must not find "no stories"
    (tmp_path / "test_stories.yml").write_text(STORIES + "rules:\n- rule: r\n  steps:\n"
                                                        "  - intent: a\n  - action: utter_a\n")
    monkeypatch.chdir(tmp_path)
    assert main(["visualize", "-s", "test_stories.yml", "--out", "g.dot"]) == 0
    assert "4 stories drawn as" in capsys.readouterr().out
    dot = (tmp_path / "g.dot").read_text()
    assert '"utter_cheer_up"' in dot and '"utter_a"' not in dot


def _linear(*stories):
    text = "stories:\n"
    for number, labels in enumerate(stories):
        text += f"- story: s{number}\n  steps:\n"
        text += "".join(f"  - intent: {label}\n" if label.islower() else
                        f"  - action: utter_{label.lower()}\n" for label in labels)
    return read_stories(text).stories


def test_graph_should_tell_steps_apart_by_all_max_history_steps_before():
    # max_history 4: "C" after (a, B) and after (z, B) differ in the steps before: two nodes
    graph = build_story_graph(_linear(("a", "B", "C"), ("z", "B", "C")), max_history=4)
    assert graph.labels().count("utter_c") == 2
    assert graph.labels().count("utter_b") == 2
    graph = build_story_graph(_linear(("a", "B", "C"), ("z", "B", "C")), max_history=2)
    assert graph.labels().count("utter_c") == 1


def test_graph_should_draw_many_or_steps_without_multiplying_the_ways():
    # 3 alternatives at each of 14 steps: 3**14 ways, but a handful of nodes
    text = "stories:\n- story: many\n  steps:\n" + "".join(
        f"  - or:\n    - intent: a\n    - intent: b\n    - intent: c\n"
        f"  - action: utter_{i}\n" for i in range(14))
    graph = build_story_graph(read_stories(text).stories, max_history=3)
    assert graph.labels().count("utter_13") == 3  # one per alternative before it
    assert ("utter_13", "END") in _edges(graph)
