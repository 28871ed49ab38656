"""Bad config.yml values for `benchmarks/config_values.py`, each judged by Rasa 3.6's meaning.

Every mutation is a YAML snippet (so `no`, `1e12` and `.inf` reach the reader as written) with a
verdict that does not come from Parley's own constraints, or the benchmark would grade Parley by
itself: `invalid` (no reading of Rasa's docs makes it mean something: wrong type, a count below
one, NaN), `valid` (Rasa gives it a meaning: `ranking_length: 0` is "all", an unknown key is
ignored) or `doubtful` (legal but odd, e.g. a negative policy priority).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

INVALID, VALID, DOUBTFUL = "invalid", "valid", "doubtful"

# Parameters whose default is None, by what Rasa expects instead.
NONE_KINDS = {
    "token_pattern": "regex", "number_additional_patterns": "int", "features": "features",
    "max_features": "int", "strip_accents": "choice", "stop_words": "stop_words",
    "OOV_token": "text", "OOV_words": "words", "additional_vocabulary_size": "dims",
    "featurizers": "names", "dense_norm": "float", "hidden_layers_sizes": "layers",
    "transformer_size": "int", "dense_dimension": "dims", "concat_dimension": "dims",
    "random_seed": "int", "tensorboard_log_directory": "text", "retrieval_intent": "text",
}
TEXT = {"intent_split_symbol", "core_fallback_action_name"}  # free text, not a choice
# Parley's own parameters (no Rasa meaning) where a list of numbers is a choice for
# cross-validation to make (LogisticRegressionClassifier's dense_norm: [1, 2]).
LENGTH_LISTS = {"dense_norm"}
# Verdicts that differ from "a count must be at least one" / "a number must be finite".
ZERO = {"evaluate_on_number_of_examples": VALID, "number_of_transformer_layers": VALID,
        "ranking_length": VALID, "random_state": VALID, "random_seed": VALID, "priority": VALID,
        "max_history": DOUBTFUL, "epochs": DOUBTFUL, "number_of_negative_examples": DOUBTFUL,
        "max_iter": DOUBTFUL, "min_df": DOUBTFUL, "max_iterations": DOUBTFUL,
        "number_additional_patterns": VALID, "max_relative_position": DOUBTFUL,
        "threshold": VALID, "ambiguity_threshold": VALID, "drop_rate": VALID,
        "drop_rate_attention": VALID, "regularization_constant": VALID, "L1_c": VALID,
        "L2_c": VALID, "maximum_negative_similarity": VALID, "core_fallback_threshold": VALID,
        "negative_margin_scale": VALID, "tol": DOUBTFUL, "connection_density": DOUBTFUL,
        "max_df": DOUBTFUL, "maximum_positive_similarity": DOUBTFUL}
NEGATIVE = {"priority": DOUBTFUL, "evaluate_every_number_of_epochs": VALID,
            "maximum_negative_similarity": VALID, "maximum_positive_similarity": DOUBTFUL}
HUGE = {"ranking_length": VALID, "max_features": VALID, "max_df": VALID, "max_history": DOUBTFUL,
        "priority": DOUBTFUL, "max_iter": DOUBTFUL, "max_iterations": DOUBTFUL,
        "number_additional_patterns": DOUBTFUL, "C": DOUBTFUL, "min_df": DOUBTFUL,
        "tol": DOUBTFUL, "L1_c": DOUBTFUL, "L2_c": DOUBTFUL, "negative_margin_scale": DOUBTFUL}
# null for a number: no limit (Rasa reads max_history: null as the whole history)
NULL = {"max_history": VALID, "max_relative_position": DOUBTFUL}
UNIT = {"threshold", "ambiguity_threshold", "drop_rate", "drop_rate_attention",
        "connection_density", "max_df", "core_fallback_threshold",
        "maximum_positive_similarity", "maximum_negative_similarity"}


@dataclass(frozen=True)
class Mutation:
    base: str        # which base config
    index: int       # position in its pipeline + policies
    component: str
    key: str
    snippet: str     # the value exactly as written into config.yml
    what: str        # what kind of bad value
    verdict: str     # invalid / valid / doubtful, by Rasa's meaning

    def label(self) -> str:
        return f"{self.base}:{self.component}.{self.key}: {self.snippet}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _kind(key: str, default: Any) -> str:
    if key in NONE_KINDS and default is None:
        return NONE_KINDS[key]
    if key == "batch_size":
        return "batch"
    if key in ("featurizers", "features"):
        return "names" if key == "featurizers" else "features"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "text" if key in TEXT else "choice"
    return "other"


def _wrong_types(key: str, nullable: bool) -> list[tuple[str, str, str]]:
    """Values of another type than the parameter's (snippet, what, verdict)."""
    out = [("[1, 2]", "list for scalar", INVALID), ("{a: 1}", "mapping for scalar", INVALID)]
    if not nullable:
        out.append(("null", "null not allowed", NULL.get(key, INVALID)))
    return out


def _numbers(key: str, default: Any, is_int: bool) -> list[tuple[str, str, str]]:
    out = [('"ten"', "string for number", INVALID),
           (f'"{default}"', "number as string", INVALID),
           ("true", "bool for number", INVALID),
           ("-1", "negative", NEGATIVE.get(key, INVALID)),
           ("0", "zero", ZERO.get(key, INVALID)),
           ("1000000000000", "huge 10**12", HUGE.get(key, INVALID)),
           ("1e12", "huge 1e12 (text in YAML 1.2)", INVALID),
           ("1.0e+12", "huge 1.0e+12", INVALID if is_int or key == "max_df" else HUGE.get(key, INVALID)),
           (".nan", "NaN", INVALID), (".inf", "infinite", INVALID),
           ("-.inf", "minus infinite", INVALID)]
    if is_int:
        out.append(("2.5", "fraction for whole number", INVALID))
    if key in UNIT:
        out.append(("1.5", "above 1", DOUBTFUL if "similarity" in key else INVALID))
    return out


def values_for(key: str, default: Any) -> list[tuple[str, str, str]]:
    """Every bad value tried for one parameter, as (snippet, what, verdict)."""
    kind = _kind(key, default)
    nullable = default is None
    if kind == "bool":
        return [('"False"', "string False for bool", INVALID), ("no", "no for bool", INVALID),
                ("yes", "yes for bool", INVALID), ("1", "number for bool", DOUBTFUL),
                ("0", "number for bool", DOUBTFUL), *_wrong_types(key, False)]
    if kind in ("int", "float"):
        out = _numbers(key, default if default is not None else 10, kind == "int") + \
            _wrong_types(key, nullable)
        if key in LENGTH_LISTS:  # a Parley parameter: a list is lengths to choose from
            out = [(v, w, VALID if v == "[1, 2]" else verdict) for v, w, verdict in out]
            out += [("[0, 2]", "zero in list", INVALID), ("[]", "empty list", INVALID)]
        return out
    if kind == "choice":
        out = [('"nope"', "unknown choice", INVALID), ("5", "number for text", INVALID),
               ("true", "bool for text", INVALID), *_wrong_types(key, nullable)]
        if key == "class_weight":  # scikit-learn's None: every class weighs the same
            out = [(v, w, VALID if v == "null" else verdict) for v, w, verdict in out]
        return out
    if kind in ("text", "regex"):
        out = [("5", "number for text", INVALID), ("[a, b]", "list for text", INVALID),
               ("{a: 1}", "mapping for text", INVALID)]
        if kind == "regex":
            out.append(('"[unclosed"', "malformed regex", INVALID))
        elif key == "core_fallback_action_name":
            out.append(('"action_nope"', "action not in domain", DOUBTFUL))
        if not nullable:
            out.append(("null", "null not allowed", INVALID))
        return out
    if kind == "batch":
        return [("[64, 32, 1]", "malformed list", INVALID), ("[]", "empty list", INVALID),
                ('["a", "b"]', "list of text", INVALID), ("[256, 64]", "decreasing", DOUBTFUL),
                ("64", "scalar", VALID), ("-1", "negative", INVALID), ("0", "zero", INVALID),
                ('"64"', "number as string", INVALID), ("[0, 0]", "zeros", INVALID),
                ("[64, .inf]", "infinite in list", INVALID), ("null", "null", INVALID)]
    if kind == "names":
        return [("[nope]", "unknown featurizer", INVALID),
                ("CountVectorsFeaturizer", "text for list", INVALID),
                ("[]", "empty list", VALID), ("[1]", "number in list", INVALID),
                ("{a: 1}", "mapping for list", INVALID)]
    if kind == "features":
        return [('["nope"]', "flat list", INVALID), ('[["nope"]]', "unknown feature", INVALID),
                ('"low"', "text for list", INVALID), ("[[low], [5]]", "number in list", INVALID),
                ("[]", "empty list", DOUBTFUL)]
    if kind == "words":
        return [('"the"', "text for list", INVALID), ("[1, 2]", "numbers in list", DOUBTFUL),
                ("{a: 1}", "mapping for list", INVALID)]
    if kind == "stop_words":
        return [('"english"', "sklearn built-in list", VALID), ('"nope"', "unknown list",
                INVALID), ("5", "number for list", INVALID), ("[the, a]", "list", VALID)]
    if kind == "dims":
        # a vocabulary buffer of 0 is no buffer; Rasa reads only the attributes it knows
        zero = VALID if key == "additional_vocabulary_size" else INVALID
        return [("{text: 0}", "zero in mapping", zero), ("{text: -5}", "negative", INVALID),
                ("128", "scalar for mapping", INVALID),
                ('{text: "ten"}', "text in mapping", INVALID),
                ("{nope: 8}", "unknown attribute", DOUBTFUL), ("{text: 16}", "plain", VALID)]
    if kind == "layers":
        return [("{text: [-1]}", "negative size", INVALID), ("[256]", "list for mapping",
                INVALID), ("{text: 256}", "scalar for list", INVALID),
                ("{text: [0]}", "zero size", INVALID), ("{text: [8], label: []}", "plain",
                VALID)]
    return []


UNKNOWN_KEYS = [("epoch", "5", "unknown key (typo)", VALID),
                ("nope_key", "1", "unknown key", VALID)]


def generate(bases: dict[str, list[tuple[str, dict[str, Any]]]],
             defaults: dict[str, dict[str, Any]], mutable: dict[str, set[str]],
             seed: int, limit: int) -> list[Mutation]:
    """Every mutation of the ``mutable`` components of every base config, then a seeded
    sample of ``limit`` (kept in generation order, so two runs with the same seed try the
    same values)."""
    every: list[Mutation] = []
    for base, components in bases.items():
        # a component named twice (two CountVectorsFeaturizers) is mutated at each place
        for index, (name, params) in enumerate(components):
            if name not in mutable[base]:
                continue
            for key, default in defaults[name].items():
                for snippet, what, verdict in values_for(key, params.get(key, default)):
                    every.append(Mutation(base, index, name, key, snippet, what, verdict))
            for key, snippet, what, verdict in UNKNOWN_KEYS:
                every.append(Mutation(base, index, name, key, snippet, what, verdict))
    if limit >= len(every):
        return every
    chosen = sorted(random.Random(seed).sample(range(len(every)), limit))
    return [every[i] for i in chosen]
