"""Load a model archive safely and answer with it: parse messages, predict next actions."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from parley.data.domain import DEFAULT_INTENTS, Domain
from parley.data.message import Message
from parley.engine.archive import extract_archive
from parley.errors import ModelArchiveError
from parley.model_archive import (
    COMPONENTS_DIR, METADATA_FILE, check_format, read_extracted_metadata, resolve_model)
from parley.nlu.intent_message import parse_intent_message
from parley.recipe import component_class


class Agent:
    """A trained assistant: ``parse`` for NLU, ``predict_next_actions`` for Core."""

    def __init__(self, metadata: dict[str, Any], nlu: list[Any], policies: list[Any],
                 domain: Domain | None) -> None:
        self.metadata = metadata
        self.nlu_components = nlu
        self.policies = policies
        self.domain = domain
        self._files: tempfile.TemporaryDirectory[str] | None = None

    @property
    def model_id(self) -> str:
        return str(self.metadata.get("model_id"))

    @property
    def known_intents(self) -> set[str]:
        """The domain's intents with Rasa's defaults (``restart``, …), and those NLU learned
        (an NLU-only model has no domain)."""
        names = set(DEFAULT_INTENTS) | set(self.metadata.get("labels", {}).get("intents", []))
        return names | set(self.domain.intent_names if self.domain is not None else ())

    @property
    def known_entities(self) -> set[str]:
        names = set(self.metadata.get("labels", {}).get("entities", []))
        return names | set(self.domain.entity_names if self.domain is not None else ())

    def parse(self, text: str) -> dict[str, Any]:
        """Rasa's parse result: text, intent, entities, intent_ranking (and more if set).

        ``/intent{"entity": "value"}`` gives the intent directly (buttons send these), as
        Rasa's RegexMessageHandler reads it; every other text goes through the NLU pipeline.
        """
        direct = parse_intent_message(text, self.known_intents, self.known_entities)
        if direct is not None:
            return direct
        if not self.nlu_components:
            raise ModelArchiveError("this model has no NLU part; train it with NLU data.")
        message = Message(text)
        for component in self.nlu_components:
            component.process([message])
        result: dict[str, Any] = {
            "text": text,
            "intent": message.data.get("intent", {"name": None, "confidence": 0.0}),
            "entities": message.data.get("entities", []),
            "intent_ranking": message.data.get("intent_ranking", []),
        }
        for key in ("response_selector",):
            if key in message.data:
                result[key] = message.data[key]
        return result

    def predict_next_actions(self, events: Any, max_actions: int = 10) -> list[dict[str, Any]]:
        """The actions the bot would run next, until it listens: [{action, confidence, policy}]."""
        if not self.policies or self.domain is None:
            raise ModelArchiveError("this model has no Core part; train it with stories/rules.")
        from parley.serving.predict import predict_until_listen

        return predict_until_listen(self.policies, self.domain, events, max_actions)


def load(path: str | Path) -> Agent:
    """Load a model archive, or the newest one in a folder, into an :class:`Agent`.

    Also ``parley.load``. The components are those of the predict graph the training wrote.
    """
    archive = resolve_model(path)
    # Kept for the agent's lifetime: components may read their arrays lazily.
    holder = tempfile.TemporaryDirectory(prefix="parley-model-")
    try:
        root = extract_archive(archive, Path(holder.name) / "model")
        metadata = read_extracted_metadata(root, archive)
        check_format(metadata, archive)
        graph = metadata.get("predict_graph")
        if not isinstance(graph, dict):
            raise ModelArchiveError(f"{archive}: {METADATA_FILE} has no predict graph.")
        nlu = [_load_node(root, node) for node in graph.get("nlu", [])]
        policies = [_load_node(root, node) for node in graph.get("policies", [])]
        domain = Domain.from_dict(metadata["domain"]) if metadata.get("domain") else None
    except BaseException:
        holder.cleanup()
        raise
    agent = Agent(metadata, nlu, policies, domain)
    agent._files = holder  # noqa: SLF001 - removed with the agent
    return agent


def _load_node(root: Path, node: Any) -> Any:
    """One node of the predict graph: its class by name, loaded from its folder."""
    if not isinstance(node, dict) or not {"name", "kind", "component"} <= set(node):
        raise ModelArchiveError(f"the model's predict graph has a malformed node: {node!r}.")
    directory = root / COMPONENTS_DIR / str(node["name"])
    if not directory.is_dir():
        raise ModelArchiveError(f"the model is missing the component {node['name']}.")
    cls: Any = component_class(str(node["kind"]), str(node["component"]))
    return cls.load(directory)
