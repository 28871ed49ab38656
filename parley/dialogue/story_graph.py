"""The stories as one graph, for ``parley visualize`` (Rasa's ``rasa visualize``).

Each story is a path from START to END through its steps (user intents, actions, bot and
user texts, slots set, loops). Two steps become one node when they have the same label and
the same ``max_history - 1`` steps before them, so stories that share a stretch of
conversation share its nodes, and the graph shows where they part. A checkpoint is one node
shared by the stories that end and start at it; an ``or`` step is one node per alternative.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.data.stories import (
    ActionStep, ActiveLoopStep, BotStep, CheckpointStep, OrStep, SlotStep, Story, UserStep,
)

__all__ = ["StoryGraph", "build_story_graph", "to_dot", "to_html"]

START, END = 0, 1


@dataclass(frozen=True)
class Node:
    id: int
    label: str
    kind: str  # start, end, intent, text, action, bot, slot, loop, checkpoint


@dataclass
class StoryGraph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)

    def labels(self) -> list[str]:
        return [node.label for node in self.nodes]


class _Builder:
    def __init__(self, max_history: int, examples: Mapping[str, str]) -> None:
        self.max_history = max_history
        self.examples = examples
        self.graph = StoryGraph([Node(START, "START", "start"), Node(END, "END", "end")])
        self.keys: dict[tuple[Any, ...], int] = {}
        self.edge_set: set[tuple[int, int]] = set()

    def node(self, key: tuple[Any, ...], label: str, kind: str) -> int:
        found = self.keys.get(key)
        if found is None:
            found = self.keys[key] = len(self.graph.nodes)
            self.graph.nodes.append(Node(found, label, kind))
        return found

    def edge(self, source: int, target: int) -> None:
        if (source, target) not in self.edge_set:
            self.edge_set.add((source, target))
            self.graph.edges.append((source, target))

    def add(self, story: Story) -> None:
        # Each way through the story so far: (its last node, the labels on the way there).
        frontier: list[tuple[int, tuple[str, ...]]] = [(START, ())]
        ended = False
        for position, step in enumerate(story.steps):
            ended = False
            if isinstance(step, CheckpointStep):
                target = self.node(("checkpoint", step.name), step.name, "checkpoint")
                if position > 0:
                    for source, _ in frontier:
                        self.edge(source, target)
                frontier, ended = [(target, ())], True
                continue
            alternatives = step.alternatives if isinstance(step, OrStep) else (step,)
            frontier = [self._follow(source, history, labelled)
                        for source, history in frontier
                        for labelled in (self._label(alt) for alt in alternatives)]
        if not ended:
            for source, _ in frontier:
                self.edge(source, END)

    def _follow(self, source: int, history: tuple[str, ...],
                labelled: tuple[str, str]) -> tuple[int, tuple[str, ...]]:
        label, kind = labelled
        before = history[len(history) - (self.max_history - 1):] if self.max_history > 1 else ()
        target = self.node((kind, label, before), label, kind)
        self.edge(source, target)
        return target, history + (label,)

    def _label(self, step: Any) -> tuple[str, str]:
        if isinstance(step, UserStep):
            if step.intent is None:
                return f'"{step.text}"', "text"
            entities = "".join(f"[{e.entity}]" for e in step.entities)
            example = self.examples.get(step.intent)
            return (f"{example}" if example else f"{step.intent}{entities}"), "intent"
        if isinstance(step, ActionStep):
            return step.name, "action"
        if isinstance(step, BotStep):
            return f'"{step.text}"', "bot"
        if isinstance(step, ActiveLoopStep):
            return f"active_loop: {step.name or 'null'}", "loop"
        if isinstance(step, SlotStep):
            return "slots: " + ", ".join(
                f"{s.name}" if s.any_value else f"{s.name}={json.dumps(s.value)}"
                for s in step.slots), "slot"
        return type(step).__name__, "action"  # pragma: no cover - every step kind above


def build_story_graph(stories: Sequence[Story], max_history: int = 2,
                      examples: Mapping[str, str] | None = None) -> StoryGraph:
    """The graph of ``stories``; ``examples`` (intent → a message) shows user turns as
    messages instead of intent names, as ``rasa visualize --nlu`` does."""
    if max_history < 1:
        raise ValueError(f"max_history must be at least 1, not {max_history}")
    builder = _Builder(max_history, examples or {})
    for story in stories:
        builder.add(story)
    return builder.graph


_DOT_STYLE = {
    "start": 'shape=circle, style=filled, fillcolor="#2e7d32", fontcolor=white',
    "end": 'shape=doublecircle, style=filled, fillcolor="#c62828", fontcolor=white',
    "intent": 'shape=box, style="rounded,filled", fillcolor="#bbdefb"',
    "text": 'shape=box, style="rounded,filled", fillcolor="#e3f2fd"',
    "action": "shape=box",
    "bot": 'shape=box, style=filled, fillcolor="#f5f5f5"',
    "slot": 'shape=note, fontsize=10, fontcolor="#555555"',
    "loop": 'shape=box, style=dashed',
    "checkpoint": 'shape=hexagon, style=filled, fillcolor="#fff9c4"',
}


def to_dot(graph: StoryGraph) -> str:
    """Graphviz DOT (``dot -Tsvg graph.dot``)."""
    lines = ["digraph stories {", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for node in graph.nodes:
        lines.append(f"  {node.id} [label={json.dumps(node.label)}, {_DOT_STYLE[node.kind]}];")
    lines += [f"  {a} -> {b};" for a, b in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# Rendered in the browser by dagre-d3 (as Rasa's graph.html is): the page loads d3 and
# dagre-d3 from a CDN when it is opened; the graph itself is in the page.
_HTML = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<script src="https://cdn.jsdelivr.net/npm/d3@5.16.0/dist/d3.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/dagre-d3@0.6.4/dist/dagre-d3.min.js"></script>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0; }}
svg {{ width: 100vw; height: 100vh; }}
.node rect, .node circle, .node polygon {{ stroke: #333; stroke-width: 1px; fill: #fff; }}
.node.start circle {{ fill: #2e7d32; }} .node.end circle {{ fill: #c62828; }}
.node.start text, .node.end text {{ fill: #fff; }}
.node.intent rect {{ fill: #bbdefb; }} .node.text rect {{ fill: #e3f2fd; }}
.node.bot rect {{ fill: #f5f5f5; }} .node.checkpoint rect {{ fill: #fff9c4; }}
.node.slot text {{ fill: #555; font-size: 11px; }} .node.loop rect {{ stroke-dasharray: 4 3; }}
.edgePath path {{ stroke: #555; fill: none; stroke-width: 1.2px; }}
</style>
</head>
<body>
<svg><g></g></svg>
<script>
const graph = {data};
const g = new dagreD3.graphlib.Graph().setGraph({{rankdir: "TB", nodesep: 20, ranksep: 30}})
  .setDefaultEdgeLabel(function () {{ return {{}}; }});
graph.nodes.forEach(function (n) {{
  g.setNode(n.id, {{label: n.label, class: n.kind, rx: 5, ry: 5,
    shape: (n.kind === "start" || n.kind === "end") ? "circle" : "rect"}});
}});
graph.edges.forEach(function (e) {{ g.setEdge(e[0], e[1], {{}}); }});
const svg = d3.select("svg"), inner = svg.select("g");
svg.call(d3.zoom().on("zoom", function () {{ inner.attr("transform", d3.event.transform); }}));
new dagreD3.render()(inner, g);
</script>
</body>
</html>
"""


def to_html(graph: StoryGraph, title: str = "Stories") -> str:
    """A page that draws the graph (needs the network once, for d3 and dagre-d3)."""
    data = {"nodes": [{"id": n.id, "label": n.label, "kind": n.kind} for n in graph.nodes],
            "edges": [list(edge) for edge in graph.edges]}
    # "</" inside the script would end it early: JSON may spell it "<\\/".
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return _HTML.format(title=html.escape(title), data=payload)
