"""Load a model archive safely and answer with it: parse messages, predict next actions."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from parley.data.domain import DEFAULT_INTENTS, Domain
from parley.data.message import Message
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.engine.archive import extract_archive
from parley.engine.leftovers import temp_prefix
from parley.errors import ConfigError, ModelArchiveError
from parley.model_archive import (
    COMPONENTS_DIR, METADATA_FILE, check_format, component_dir, read_extracted_metadata,
    resolve_model)
from parley.nlu.intent_message import PREFIX as INTENT_PREFIX, parse_intent_message
from parley.recipe import component_class
from parley.training.text_features import PipelineTextFeaturizer


class Agent:
    """A trained assistant: ``parse`` for NLU, ``predict_next_actions`` for Core."""

    def __init__(self, metadata: dict[str, Any], nlu: list[Any], policies: list[Any],
                 domain: Domain | None) -> None:
        self.metadata = metadata
        self.nlu_components = nlu
        self.policies = policies
        self.domain = domain
        self._files: tempfile.TemporaryDirectory[str] | None = None
        self._ensemble: PolicyEnsemble | None = None
        self._text_featurizer: PipelineTextFeaturizer | None = None

    def close(self) -> None:
        """Remove the model's extracted files now, not when the agent is collected (code
        that loads many models in turn, as cross-validation, would leave them to the
        garbage collector, which warns)."""
        if self._files is not None:
            self._files.cleanup()
            self._files = None

    @property
    def model_id(self) -> str | None:
        """The archive's ``model_id``; None in an archive that has none (not the text
        "None"), as Rasa's agent gives None: ``/status`` then shows null and events get
        no ``model_id`` in their metadata."""
        value = self.metadata.get("model_id")
        return str(value) if value else None

    @property
    def assistant_id(self) -> str | None:
        """config.yml's ``assistant_id`` (None in an archive that has none)."""
        value = self.metadata.get("assistant_id")
        return str(value) if value else None

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

    @property
    def has_nlu(self) -> bool:
        return bool(self.nlu_components)

    @property
    def has_core(self) -> bool:
        return bool(self.policies) and self.domain is not None

    def parse(self, text: str) -> dict[str, Any]:
        """Rasa's parse result: text, intent, entities, intent_ranking (and more if set).

        ``/intent{"entity": "value"}`` gives the intent directly (buttons send these), as
        Rasa's RegexMessageHandler reads it; every other text goes through the NLU pipeline.
        """
        return self.parse_batch([text])[0]

    def parse_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        """:meth:`parse` of each text, the NLU pipeline run once over all of them (what
        ``test nlu`` and offline scoring want: one batch costs little more than a message).
        The results are those of parsing each text alone."""
        # The names the model knows are gathered only for texts that may name an intent.
        known = ((self.known_intents, self.known_entities)
                 if any(text.lstrip().startswith(INTENT_PREFIX) for text in texts) else ((), ()))
        results: list[dict[str, Any] | None] = [
            parse_intent_message(text, *known) for text in texts]
        messages = [Message(text) for text, done in zip(texts, results, strict=True) if done is None]
        if messages and not self.nlu_components:
            raise ModelArchiveError("this model has no NLU part; train it with NLU data.")
        if messages:
            for component in self.nlu_components:
                component.process(messages)
        parsed = iter(messages)
        return [done if done is not None else _parse_result(next(parsed)) for done in results]

    @property
    def text_featurizer(self) -> PipelineTextFeaturizer | None:
        """The NLU pipeline's tokenizers and featurizers over texts: what end-to-end
        policies (TED) read new messages with. None without an NLU part."""
        if self._text_featurizer is None and self.nlu_components:
            self._text_featurizer = PipelineTextFeaturizer(self.nlu_components)
        return self._text_featurizer or None

    def predict_next_action(self, tracker: DialogueStateTracker) -> PolicyPrediction:
        """The policies' combined prediction (Rasa's ensemble) for the conversation now;
        the runtime's processor runs the action it names."""
        if not self.policies or self.domain is None:
            raise ModelArchiveError("this model has no Core part; train it with stories/rules.")
        if self._ensemble is None:
            self._ensemble = PolicyEnsemble(self.policies)
        return self._ensemble.predict(tracker, self.domain, self.text_featurizer)

    def predict_next_actions(self, events: Any, max_actions: int = 10) -> list[dict[str, Any]]:
        """The actions the bot would run next, until it listens: [{action, confidence, policy,
        reason}] (reason: why that policy won, see docs/dialogue.md)."""
        if not self.policies or self.domain is None:
            raise ModelArchiveError("this model has no Core part; train it with stories/rules.")
        from parley.serving.predict import predict_until_listen

        return predict_until_listen(self.policies, self.domain, events, max_actions,
                                    self.text_featurizer)


def _parse_result(message: Message) -> dict[str, Any]:
    """Rasa's parse result from a message the NLU pipeline processed."""
    result: dict[str, Any] = {
        "text": message.text,
        "intent": message.data.get("intent", {"name": None, "confidence": 0.0}),
        "entities": message.data.get("entities", []),
        "intent_ranking": message.data.get("intent_ranking", []),
    }
    for key in ("response_selector",):
        if key in message.data:
            result[key] = message.data[key]
    return result


def load(path: str | Path) -> Agent:
    """Load a model archive, or the newest one in a folder, into an :class:`Agent`.

    Also ``parley.load``. The components are those of the predict graph the training wrote.
    An archive is untrusted input, so whatever goes wrong while loading it — a damaged or
    crafted file anywhere in it, arrays that load but do not fit the component — comes out
    as one :class:`ModelArchiveError` naming the archive and the member.
    """
    archive = resolve_model(path)
    # Kept for the agent's lifetime: components may read their arrays lazily.
    holder = tempfile.TemporaryDirectory(prefix=temp_prefix("parley-model-"))
    try:
        root = extract_archive(archive, Path(holder.name) / "model")
        metadata = read_extracted_metadata(root, archive)
        check_format(metadata, archive)
        graph = metadata["predict_graph"]
        nlu = [_load_node(root, node, archive) for node in graph.get("nlu", [])]
        policies = [_load_node(root, node, archive) for node in graph.get("policies", [])]
        domain = _domain(metadata, archive)
        agent = Agent(metadata, nlu, policies, domain)
        _first_message(agent, archive)
    except BaseException:
        holder.cleanup()
        raise
    agent._files = holder  # noqa: SLF001 - removed with the agent
    return agent


def _load_node(root: Path, node: dict[str, str], archive: Path) -> Any:
    """One node of the predict graph: its class by name, loaded from its folder (which
    must lie directly under the model's ``components/``)."""
    directory = component_dir(root, node["name"], archive)
    member = f"{COMPONENTS_DIR}/{node['name']}"
    if not directory.is_dir():
        raise ModelArchiveError(f"{archive}: the model is missing the component {member}.")
    try:
        cls: Any = component_class(node["kind"], node["component"])
    except ConfigError as error:
        raise ModelArchiveError(f"{archive}: {member}: {error}") from error
    try:
        return cls.load(directory)
    except ModelArchiveError as error:
        raise ModelArchiveError(f"{archive}: {member}: {_relative(error, root)}") from error
    except Exception as error:  # noqa: BLE001 - any failure on untrusted bytes is damage
        raise ModelArchiveError(
            f"{archive}: {member} holds a damaged {node['component']} "
            f"({type(error).__name__}: {_first_line(error)}); train the model again."
        ) from error


def _domain(metadata: dict[str, Any], archive: Path) -> Domain | None:
    if not metadata.get("domain"):
        return None
    try:
        return Domain.from_dict(metadata["domain"])
    except Exception as error:  # noqa: BLE001 - a damaged domain in an untrusted archive
        raise ModelArchiveError(
            f"{archive}: {METADATA_FILE} holds a damaged domain ({type(error).__name__}: "
            f"{_first_line(error)}); train the model again.") from error


# What the model must answer before it is handed out (see _first_message).
FIRST_MESSAGE = "hello there"


def _first_message(agent: Agent, archive: Path) -> None:
    """Run one parse and one prediction on an empty conversation.

    Arrays of the wrong shape or dtype load without complaint and crash at the first
    message, which in a server is the first user's request. One parse of a short text and
    one prediction cost milliseconds next to extracting the archive, and turn that crash
    into a load error that names the archive.
    """
    try:
        if agent.nlu_components:
            agent.parse(FIRST_MESSAGE)
        if agent.policies and agent.domain is not None:
            agent.predict_next_actions([], max_actions=1)
    except Exception as error:  # noqa: BLE001 - any failure here is the model's
        raise ModelArchiveError(
            f"the model in {archive} fails on a first message ({type(error).__name__}: "
            f"{_first_line(error)}); train the model again.") from error


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0][:300]


def _relative(error: BaseException, root: Path) -> str:
    """The error's text with the temporary extraction folder left out of paths."""
    text = str(error)
    for prefix in (str(root.resolve()) + "/", str(root) + "/"):
        text = text.replace(prefix, "")
    return text
