"""Load a model archive safely and answer with it: parse messages, predict next actions."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from parley.data.domain import Domain
from parley.data.message import Message
from parley.engine.archive import extract_archive
from parley.errors import ModelArchiveError
from parley.recipe import NLU, component_class
from parley.training.run import COMPONENTS_DIR, METADATA_FILE, MODEL_FORMAT


def resolve_model(path: str | Path) -> Path:
    """An archive, or a directory → its newest archive."""
    path = Path(path)
    if path.is_dir():
        archives = sorted((p for p in path.glob("*.tar.gz") if not p.name.startswith(".")),
                          key=lambda p: (p.stat().st_mtime, p.name))
        if not archives:
            raise ModelArchiveError(f"no model archive (*.tar.gz) in {path}; train one first.")
        return archives[-1]
    if not path.is_file():
        raise ModelArchiveError(f"the model {path} does not exist.")
    return path


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

    def parse(self, text: str) -> dict[str, Any]:
        """Rasa's parse result: text, intent, entities, intent_ranking (and more if set)."""
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
    """Load a model archive (or the newest one in a directory) into an :class:`Agent`."""
    archive = resolve_model(path)
    # Kept for the agent's lifetime: components may read their arrays lazily.
    holder = tempfile.TemporaryDirectory(prefix="parley-model-")
    try:
        root = extract_archive(archive, Path(holder.name) / "model")
        try:
            metadata = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelArchiveError(f"{archive} has no readable {METADATA_FILE}: {exc}") from None
        if metadata.get("model_format") != MODEL_FORMAT:
            raise ModelArchiveError(
                f"{archive} is in model format {metadata.get('model_format')}, this Parley "
                f"reads format {MODEL_FORMAT}; retrain the model with this version.")
        graph = metadata.get("train_graph", {})
        nlu = [_load_node(root, node) for node in graph.get("nlu", [])]
        policies = [_load_node(root, node) for node in graph.get("policies", [])]
        domain = Domain.from_dict(metadata["domain"]) if metadata.get("domain") else None
    except BaseException:
        holder.cleanup()
        raise
    agent = Agent(metadata, nlu, policies, domain)
    agent._files = holder  # noqa: SLF001 - removed with the agent
    return agent


def _load_node(root: Path, node: dict[str, Any]) -> Any:
    directory = root / COMPONENTS_DIR / str(node["name"])
    if not directory.is_dir():
        raise ModelArchiveError(f"the model is missing the component {node['name']}.")
    cls: Any = component_class(node.get("kind", NLU), str(node["component"]))
    return cls.load(directory)
