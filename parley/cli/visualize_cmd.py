"""``parley visualize``: the stories as a graph in an HTML page (or Graphviz DOT)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from parley.cli.data_cmd import positive_int


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "visualize", help="Draw the stories as a graph (graph.html).",
        description="Merge the stories into one graph — steps with the same label after the "
                    "same --max-history - 1 steps become one node — and write it as an HTML "
                    "page (drawn by d3/dagre-d3, loaded when the page opens, as Rasa's "
                    "graph.html) or, for an --out ending in .dot, as Graphviz DOT. Rules "
                    "are left out, as in Rasa's.")
    parser.add_argument("-s", "--stories", nargs="+", default=["data"], metavar="PATH",
                        help="Story files or folders (default: data).")
    parser.add_argument("--out", default="graph.html",
                        help="The page to write (default: graph.html; .dot for DOT).")
    parser.add_argument("--max-history", type=positive_int, default=2, metavar="N",
                        help="Steps that must match before two steps merge (default: 2).")
    parser.add_argument("-u", "--nlu", nargs="+", default=None, metavar="PATH",
                        help="NLU data: show user turns as an example message of their "
                             "intent instead of its name.")
    parser.add_argument("-d", "--domain", default=None,
                        help="Accepted as Rasa's; the graph is drawn from the stories alone.")
    parser.add_argument("-c", "--config", default=None,
                        help="Accepted as Rasa's; the graph is drawn from the stories alone.")
    parser.set_defaults(handler=run_visualize)


def run_visualize(args: argparse.Namespace) -> int:
    from parley.data.importer import TrainingDataImporter
    from parley.dialogue.story_graph import build_story_graph, to_dot, to_html
    from parley.errors import DataError

    for paths, what, flag in ((args.stories, "stories", "-s/--stories"),
                              (args.nlu or [], "NLU data", "-u/--nlu")):
        for path in paths:
            if not Path(path).exists():
                raise DataError(f"the {what} path '{path}' given to {flag} does not exist.")
    importer = TrainingDataImporter(None, None, args.stories)
    # Test stories (test_*.yml) are stories too: `-s tests/test_stories.yml` draws them.
    stories = [*importer.stories, *(s for s in importer.test_stories if not s.is_rule)]
    if not stories:
        raise DataError(f"no stories found in {' '.join(args.stories)}; nothing to draw.",
                        hint="Pass story files (a 'stories:' section) with -s/--stories.")
    examples: dict[str, str] = {}
    if args.nlu:
        for message in TrainingDataImporter(None, None, args.nlu).nlu_data.intent_examples:
            examples.setdefault(str(message.intent), message.text)
    graph = build_story_graph(stories, args.max_history, examples)
    out = Path(args.out)
    text = to_dot(graph) if out.suffix == ".dot" else to_html(graph, "Parley stories")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"{len(stories)} stories drawn as {len(graph.nodes)} nodes and "
          f"{len(graph.edges)} edges in {out}")
    return 0
