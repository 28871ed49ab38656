"""Every error Parley raises on purpose.

::

    ParleyError
     ├── DataError                 a user file is wrong; knows file and line
     │    ├── YamlSyntaxError      the YAML itself does not parse
     │    ├── SchemaError          a key or value is not allowed where it stands
     │    ├── FormatVersionError   the file is written in a format Parley does not read
     │    └── ValidationError      cross-file checks failed (carries every issue)
     ├── ConfigError               config.yml asks for something that cannot be built
     ├── ComponentError            a user's own component (named by module path) failed
     ├── NotFittedError            a component was used before ``fit``
     ├── ProjectExistsError        ``parley init`` would overwrite a file
     ├── ModelArchiveError         a model archive is corrupt, unsafe or cannot be written
     ├── CacheError                the training cache cannot be used as configured
     └── RuntimeFailure            a conversation could not go on as asked
          ├── StoreError           a tracker or lock store is misconfigured or unreachable
          ├── BrokerError          an event broker is misconfigured, unreachable, or
          │                        could not publish
          ├── LockError            a conversation's lock was not granted in time
          └── ActionError          an action cannot run (unknown, or its server failed)
               └── ActionRejected  the action refused to run (rasa-sdk's
                                   ActionExecutionRejection); the policies choose again

    ParleyWarning (a UserWarning)  something is odd but loading goes on; the message
                                   names file and line like the errors do

The CLI maps these to exit codes; library code only raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ParleyError(Exception):
    """Base of every error Parley raises on purpose."""


def location(file: str | Path | None, line: int | None) -> str:
    """``file:line`` (1-based line) as shown to users; empty when unknown."""
    if file is None:
        return ""
    return f"{file}:{line}" if line else str(file)


class _Placed(ParleyError):
    """An error that can point at a place in one of the user's files: the file, the line
    (both optional) and a hint, printed by the CLI as ``file:line: error: what. Hint.``"""

    def __init__(
        self,
        message: str,
        file: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    @property
    def detail(self) -> str:
        """The message and the hint, without the place."""
        text = self.message
        if self.hint:
            if not text.endswith((".", "?", "!", ":")):
                text += "."
            text += f" {self.hint}"
        return text

    def __str__(self) -> str:
        where = location(self.file, self.line)
        return f"{where}: {self.detail}" if where else self.detail

    def report(self) -> str:
        """One line as the CLI prints it: ``file:line: error: what. Hint.``"""
        where = location(self.file, self.line)
        return f"{where}: error: {self.detail}" if where else f"error: {self.detail}"


class DataError(_Placed):
    """A problem in a user's file, pointing at the file and line."""


class YamlSyntaxError(DataError):
    """The file is not valid YAML."""


class SchemaError(DataError):
    """A key or value is not allowed at its place in the file."""


class FormatVersionError(DataError):
    """The file uses a format version Parley cannot read (e.g. a Rasa 2.x domain)."""


@dataclass(frozen=True)
class Issue:
    """One finding of validation: an error or a warning, with its place."""

    level: str  # "error" or "warning"
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = location(self.file, self.line)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.level}: {self.message}"


class ValidationError(DataError):
    """Validation found errors; ``issues`` holds all of them (warnings too)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        errors = [i for i in self.issues if i.level == "error"]
        lines = "\n".join(f"  {i}" for i in errors)
        super().__init__(f"the project has {len(errors)} error(s):\n{lines}")


class ConfigError(_Placed):
    """config.yml asks for something Parley cannot build; ``file``/``line`` point at the
    entry or parameter when the problem has a place in config.yml."""


class ComponentError(ParleyError):
    """A component the user wrote (named in config.yml by module path) raised: the fault is
    in that code, not in Parley, and the message says where it stands in config.yml."""


class NotFittedError(ParleyError):
    """A component was used before it was trained."""


class ProjectExistsError(ParleyError):
    """``parley init`` would overwrite a file that is already there."""


class ParleyWarning(UserWarning):
    """Something in the user's files is odd, yet Parley can go on.

    Its text starts with ``file:line``; ``issue`` gives it as an :class:`Issue`.
    """

    def __init__(self, message: str, file: str | Path | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        where = location(file, line)
        super().__init__(f"{where}: {message}" if where else message)

    @property
    def issue(self) -> Issue:
        return Issue("warning", self.message, self.file, self.line)


def warn(message: str, file: str | Path | None = None, line: int | None = None) -> None:
    """Emit a :class:`ParleyWarning` about ``file`` at ``line``."""
    import warnings

    warnings.warn(ParleyWarning(message, file, line), stacklevel=2)


class ModelArchiveError(ParleyError):
    """A model archive is not a readable, safe Parley archive, or cannot be written.

    The message names the archive file and what is wrong with it.
    """


class CacheError(ParleyError):
    """The training cache cannot be used as configured (bad size limit, bad fingerprint,
    or the disk refused a write)."""


class RuntimeFailure(ParleyError):
    """A conversation could not go on as asked (named so as not to shadow the builtin
    ``RuntimeError``)."""


class StoreError(RuntimeFailure):
    """A tracker or lock store is misconfigured (endpoints.yml) or cannot be reached."""


class BrokerError(RuntimeFailure):
    """An event broker (endpoints.yml's ``event_broker``) is misconfigured, cannot be reached,
    or failed to publish a conversation's events."""


class LockError(RuntimeFailure):
    """A conversation's lock was not granted in time: another message to the same
    conversation is still being handled."""


class ActionError(RuntimeFailure):
    """An action cannot run: its name is unknown, or the action server failed, timed out or
    answered something that is not the action-server protocol."""


class ActionRejected(ActionError):
    """The action refused to run on purpose (rasa-sdk's ``ActionExecutionRejection``, a
    form that cannot use the message): the conversation goes on and the policies choose
    another action."""
