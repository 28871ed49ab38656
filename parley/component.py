"""The component contract every pipeline component and policy follows, in code.

Sized like scikit-learn's estimators:

- the constructor takes typed keyword hyperparameters with defaults, stores them unchanged
  and does no work; config.yml keys are exactly these names;
- ``fit(...)`` takes its inputs by name, learns state into attributes ending in ``_`` and
  returns ``self``; using a component before ``fit`` raises :class:`NotFittedError`;
- NLU components (:class:`NLUComponent`) ``process(messages)`` in batches; policies
  (``parley.dialogue.policies.base.Policy``) ``predict(tracker, domain)``;
- persistence is written once here: :meth:`Component.save` writes ``params.json``, the
  JSON state and the arrays a component's :meth:`~Component._state` hook returns, and
  :meth:`Component.load` rebuilds it through :meth:`~Component._set_state`. JSON and
  ``.npz`` only, never pickle; a missing or damaged file is a :class:`ModelArchiveError`
  that names it, for every component alike;
- components that can continue training declare it by subclassing :class:`Finetunable`;
- ``needs`` / ``provides`` say what a component reads from the messages and what it
  writes on them (the words of :data:`PRODUCTS`); the recipe checks a pipeline with them.

Components never see caches, storage or the graph: the engine hands them directories.
"""

from __future__ import annotations

import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from parley.errors import ConfigError, ModelArchiveError, NotFittedError
from parley.params import Constraint, ParamProblem, Rule, find_problems

if TYPE_CHECKING:
    from typing import Self

    import numpy as np

    from parley.data.message import Message
    from parley.data.training_data import TrainingData

PARAMS_FILE = "params.json"
STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"

# What a component can need before it in the pipeline and provide after it.
TOKENS = "tokens"
SPARSE_FEATURES = "sparse_features"
DENSE_FEATURES = "dense_features"
INTENT = "intent"
ENTITIES = "entities"
RESPONSE = "response"
# "features" in ``needs`` is satisfied by either kind of features.
FEATURES = "features"
PRODUCTS: dict[str, str] = {
    TOKENS: "tokens (a tokenizer)",
    SPARSE_FEATURES: "sparse features (a featurizer such as CountVectorsFeaturizer)",
    DENSE_FEATURES: "dense features (a featurizer such as LanguageModelFeaturizer)",
    FEATURES: "features (a featurizer)",
    INTENT: "an intent (an intent classifier)",
    ENTITIES: "entities (an entity extractor)",
    RESPONSE: "a retrieval response (a response selector)",
}


def satisfied(need: str, provided: set[str]) -> bool:
    """Whether what the components before provide covers ``need``."""
    if need == FEATURES:
        return bool(provided & {SPARSE_FEATURES, DENSE_FEATURES})
    return need in provided


class Component:
    """Base of every component: parameters, fitted checks and persistence.

    Subclasses set ``name`` (the Rasa name used in config.yml). What decides a trained
    result is fingerprinted from the class's source, so nothing needs bumping by hand.
    """

    name: ClassVar[str] = ""
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
    # What the component reads from / writes on the messages (see PRODUCTS).
    needs: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    # The file the JSON half of the state goes to (policies keep their ``lookup.json``).
    state_file: ClassVar[str] = STATE_FILE

    @classmethod
    def needs_with(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        """What the component needs configured with ``params`` (from config.yml); most
        need the same whatever their parameters."""
        return cls.needs

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):  # a user's component need not repeat its name
            cls.name = cls.__name__

    @classmethod
    def runtime_fingerprint(cls) -> dict[str, Any]:
        """What this machine decides that changes what training learns (e.g. precision)."""
        return {}

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
    def from_params(cls, params: dict[str, Any], where: str = "") -> Self:
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
        # Newest attributes first: learned ones are set after the parameters, so the search
        # stops at once (every prediction checks; TED has ~50 parameters).
        # (a plain loop: a parse checks ~10 components, and the generator cost a few µs each)
        for k in reversed(self.__dict__):
            if k.endswith("_") and not k.startswith("_"):
                return
        raise NotFittedError(
            f"{self.name or type(self).__name__} is not trained yet: it has no learned "
            "attribute (a name ending in '_'). Call fit() first; a component that learns "
            "nothing subclasses StatelessNLUComponent."
        )

    # --- persistence: the template ---------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What was learned: a JSON-able dict and named plain arrays (may be empty)."""
        raise NotImplementedError(f"{type(self).__name__} does not say what it learned")

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`_state` returned onto a freshly built instance.

        Missing keys, wrong types or shapes may raise KeyError, TypeError, ValueError,
        IndexError or RuntimeError: :meth:`load` reports them as a damaged archive.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot restore what it learned")

    def save(self, directory: str | Path) -> None:
        """Write ``params.json``, the JSON state and (when there are any) the arrays."""
        self.check_is_fitted()
        path = Path(directory)
        state, arrays = self._state()
        self.save_params(path)
        (path / self.state_file).write_text(
            json.dumps(state, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        if arrays:
            write_arrays(path / ARRAYS_FILE, arrays)
        else:  # nothing stale from an earlier save may be read back
            (path / ARRAYS_FILE).unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """The component :meth:`save` wrote to ``directory``, ready to use."""
        path = Path(directory)
        params = cls.load_params(path)
        try:
            component = cls(**params)
        except Exception as error:  # noqa: BLE001 - a user class's constructor, untrusted values
            raise ModelArchiveError(f"{path / PARAMS_FILE}: {cls.name} cannot be built from "
                                    f"its saved parameters ({type(error).__name__}: {error}); "
                                    "train the model again.") from error
        state_path = path / cls.state_file
        state = _SavedMapping(_read_json_file(state_path, cls.name), state_path)
        arrays_path = path / ARRAYS_FILE
        arrays = _SavedMapping(read_arrays(arrays_path) if arrays_path.exists() else {},
                               arrays_path)
        try:
            component._set_state(state, arrays)
        except ModelArchiveError as error:
            if str(path) in str(error):
                raise
            raise ModelArchiveError(f"{path}: {error}") from error
        except (LookupError, TypeError, ValueError, AttributeError, RuntimeError,
                ArithmeticError, AssertionError, MemoryError) as error:
            detail = str(error).splitlines()[0] if str(error) else ""
            files = " and ".join(str(p) for p in (state_path, arrays_path) if p.exists())
            raise ModelArchiveError(
                f"{path} holds a damaged {cls.name}: {files} do not fit together "
                f"({type(error).__name__}: {detail}); train the model again."
            ) from error
        return component

    def save_params(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PARAMS_FILE).write_text(
            json.dumps({"component": self.name, "params": self.get_params()},
                       sort_keys=True, indent=1), encoding="utf-8")

    @classmethod
    def load_params(cls, directory: Path) -> dict[str, Any]:
        """The saved parameters; a clear error when they are not this component's."""
        path = directory / PARAMS_FILE
        data = _read_json_file(path, cls.name)
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise ModelArchiveError(f"{path} is damaged: it holds no 'params' mapping; "
                                    "train the model again.")
        if data.get("component") != cls.name:
            raise ModelArchiveError(
                f"{directory} holds a '{data.get('component')}', not a '{cls.name}' "
                f"({path}); load it with its own class or train again."
            )
        params: dict[str, Any] = data["params"]
        unknown = sorted(set(params) - set(cls.param_names()))
        if unknown:
            raise ModelArchiveError(f"{path} has parameters {cls.name} does not take "
                                    f"({', '.join(unknown)}); train the model again.")
        return params

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class NLUComponent(Component, ABC):
    """A pipeline component: learns from training data, writes onto messages."""

    @abstractmethod
    def fit(self, training_data: TrainingData) -> Self:
        """Learn from ``training_data`` and return ``self``."""

    @abstractmethod
    def process(self, messages: list[Message]) -> None:
        """Write what this component finds onto each message (in place)."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @abstractmethod
    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None: ...


class StatelessNLUComponent(NLUComponent):
    """A component whose whole state follows from its parameters (it learns nothing from
    data): saving keeps the parameters, loading runs ``fit`` on no data to rebuild it."""

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"fitted": True}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        from parley.data.training_data import TrainingData

        if state["fitted"] is not True:
            raise ValueError("'fitted' is not true")
        self.fit(TrainingData())


def finetune_epochs(epochs: int, fraction: float) -> int:
    """``ceil(epochs × fraction)``, at least 1: how long a finetuned component continues."""
    return max(1, math.ceil(epochs * fraction))


class Finetunable(ABC):
    """A component that continues training from what it learned (``model_to_finetune``).

    Components that are not Finetunable keep what they learned when a model is finetuned,
    so the features they make keep their meaning. Use :func:`finetune_epochs` for the
    length of the continued training.
    """

    @abstractmethod
    def finetune(self, training_data: TrainingData, epoch_fraction: float) -> Self:
        """Continue on ``training_data`` for ``finetune_epochs(epochs, epoch_fraction)``."""


# --- files -----------------------------------------------------------------------------
class _SavedMapping(dict[str, Any]):
    """A loaded dict whose missing keys are reported as a damaged file, named."""

    def __init__(self, data: Any, path: Path) -> None:
        if not isinstance(data, dict):
            raise ModelArchiveError(f"{path} is damaged: it holds no mapping; train the "
                                    "model again.")
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str) -> Any:
        what = "the file is missing" if not self.path.exists() else f"it has no '{key}'"
        raise ModelArchiveError(f"{self.path} is damaged or incomplete ({what}); train the "
                                "model again.")


def _read_json_file(path: Path, name: str) -> Any:
    if not path.is_file():
        raise ModelArchiveError(f"{path} is missing; {path.parent} holds no saved trained "
                                f"{name or 'component'}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        raise ModelArchiveError(f"{path} is damaged ({error}); train the model again.") from None
    except RecursionError:
        raise ModelArchiveError(f"{path} is damaged (nested too deeply to be a saved "
                                "component); train the model again.") from None


def _savez_takes_allow_pickle() -> bool:
    import numpy as np

    return "allow_pickle" in inspect.signature(np.savez).parameters


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Plain arrays into one ``.npz``; arrays of Python objects are refused."""
    import numpy as np

    for key, array in arrays.items():
        if array.dtype.kind == "O":
            raise TypeError(f"array '{key}' holds Python objects; only plain arrays are saved")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        # numpy >= 2.1 takes allow_pickle in savez; older versions would store it as an array.
        if _savez_takes_allow_pickle():
            np.savez(handle, allow_pickle=False, **arrays)  # type: ignore[arg-type]
        else:
            np.savez(handle, **arrays)  # type: ignore[arg-type]


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (never unpickling); a damaged file is named."""
    import zipfile

    import numpy as np

    if not path.is_file():
        raise ModelArchiveError(f"{path} is missing; train the model again.")
    try:
        with np.load(path, allow_pickle=False) as loaded:
            for key in loaded.files:
                _check_declared_size(loaded.zip, key)
            return {key: loaded[key] for key in loaded.files}
    except ModelArchiveError as error:
        raise ModelArchiveError(f"{path} is damaged ({error}); train the model again.") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError,
            LookupError, MemoryError, NotImplementedError) as error:
        raise ModelArchiveError(f"{path} is damaged ({type(error).__name__}: {error}); train "
                                "the model again.") from None


def _check_declared_size(archive: Any, key: str) -> None:
    """Refuse an array whose header declares more data than its member holds: numpy
    allocates the declared shape before reading, so a crafted header could ask for
    terabytes (a pickled object array is refused by ``allow_pickle=False``)."""
    import numpy as np

    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _order, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _order, dtype = np.lib.format.read_array_header_2_0(member)
        else:  # 3.0 (UTF-8 field names) has no public reader, and Parley never writes it
            raise ModelArchiveError(f"array '{key}' is in .npy format {version}, which "
                                    "Parley does not write")
    count = 1
    for size in shape:
        count *= size
    if dtype.hasobject:
        raise ModelArchiveError(f"array '{key}' holds Python objects, which are never loaded")
    if count * dtype.itemsize > info.file_size:
        raise ModelArchiveError(f"array '{key}' declares {count * dtype.itemsize} bytes but "
                                f"holds {info.file_size}")
