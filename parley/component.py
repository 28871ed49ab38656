"""The component contract every pipeline component and policy follows.

Sized like scikit-learn's estimators:

- the constructor takes typed keyword hyperparameters with defaults, stores them unchanged
  and does no work; config.yml keys are exactly these names;
- ``fit(...)`` takes its inputs by name, learns state into attributes ending in ``_`` and
  returns ``self``; using a component before ``fit`` raises :class:`NotFittedError`;
- NLU components ``process(messages)`` in batches; policies ``predict(tracker, domain)``;
- ``save(directory)`` / ``load(directory)`` persist to JSON / ``.npz`` only, never pickle;
- ``random_seed`` makes training deterministic.

Components never see caches, storage or the graph: the engine hands them directories.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

from parley.errors import ConfigError, NotFittedError
from parley.params import Constraint, ParamProblem, Rule, find_problems

PARAMS_FILE = "params.json"


class Component:
    """Base of every component: parameter handling, fitted checks, params persistence.

    Subclasses set ``name`` (the Rasa name used in config.yml) and bump ``code_version``
    whenever a change to their code changes what they learn, so cached results retrain.
    """

    name: ClassVar[str] = ""
    code_version: ClassVar[int] = 1
    # Python packages whose versions enter the fingerprint (their updates may change results).
    uses_packages: ClassVar[tuple[str, ...]] = ()
    # Whether components after this one train on what its ``process`` adds to the training
    # messages (tokens, features). Classifiers and extractors set False: as in Rasa, later
    # components learn from the annotations, not from predictions, so training skips
    # running them over the training data (DIET on banking77-small: ~1 s).
    prepares_training_data: ClassVar[bool] = True
    # What each constructor parameter may be (every parameter has one; a contract test
    # holds that) and the checks across parameters: see parley/params.py.
    param_constraints: ClassVar[dict[str, Constraint]] = {}
    param_rules: ClassVar[tuple[Rule, ...]] = ()

    # --- parameters ----------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind in kinds]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        signature = inspect.signature(cls.__init__)
        return {p.name: p.default for p in signature.parameters.values()
                if p.name != "self" and p.default is not inspect.Parameter.empty}

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    @classmethod
    def unknown_param_message(cls, key: str, brief: bool = False) -> str:
        """"X has no parameter 'key'. Did you mean …? Its parameters: …" (``brief``: the
        list only when there is no close match)."""
        import difflib

        valid = cls.param_names()
        close = difflib.get_close_matches(key, valid, n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        if brief and close:
            return f"{cls.name} has no parameter '{key}'.{guess}"
        return (f"{cls.name} has no parameter '{key}'.{guess} "
                f"Its parameters: {', '.join(valid) or 'none'}.")

    @classmethod
    def param_problems(cls, params: dict[str, Any]) -> list[ParamProblem]:
        """Every value of ``params`` its constraint refuses, then every broken rule
        (over ``params`` on top of the defaults). Unknown keys are not looked at."""
        return find_problems(cls.param_constraints, cls.param_rules, params,
                              cls.default_params())

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str = "") -> Component:
        """Build from config.yml parameters: an unknown key names the valid ones, a value
        its constraint refuses says what is allowed."""
        prefix = f"{where}: " if where else ""
        unknown = sorted(set(params) - set(cls.param_names()))
        if unknown:
            raise ConfigError(f"{prefix}{cls.unknown_param_message(unknown[0])}")
        problems = cls.param_problems(params)
        if problems:
            raise ConfigError(f"{prefix}{cls.name}: {problems[0].message}")
        return cls(**params)

    def check_params(self) -> None:
        """Raise ConfigError for the first parameter value that is not allowed (``fit``
        calls this, as scikit-learn's estimators validate their parameters in ``fit``)."""
        problems = self.param_problems(self.get_params())
        if problems:
            raise ConfigError(f"{self.name}: {problems[0].message}")

    # --- fitted state --------------------------------------------------------------
    def fitted_attributes(self) -> list[str]:
        return [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]

    def check_is_fitted(self) -> None:
        if not self.fitted_attributes():
            raise NotFittedError(
                f"{self.name or type(self).__name__} is not trained yet; call fit() first."
            )

    # --- persistence ---------------------------------------------------------------
    def save_params(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PARAMS_FILE).write_text(
            json.dumps({"component": self.name, "code_version": self.code_version,
                        "params": self.get_params()}, sort_keys=True, indent=1))

    @classmethod
    def load_params(cls, directory: Path) -> dict[str, Any]:
        data = json.loads((directory / PARAMS_FILE).read_text())
        if data.get("component") != cls.name:
            raise ConfigError(
                f"{directory} holds a '{data.get('component')}', not a '{cls.name}'."
            )
        params: dict[str, Any] = data["params"]
        return params

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
