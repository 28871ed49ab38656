from __future__ import annotations

import subprocess
import sys

import pytest

from parley.errors import ConfigError
from parley.nlu.registry import (
    KNOWN_RASA_COMPONENTS_NOT_YET_AVAILABLE,
    NLU_COMPONENTS,
    get_component_class,
)


def test_every_entry_should_import_to_a_class_of_that_name() -> None:
    for name in NLU_COMPONENTS:
        assert get_component_class(name).name == name


def test_known_rasa_component_not_yet_available_should_say_so() -> None:
    with pytest.raises(ConfigError, match="'SpacyNLP' is a Rasa component Parley does not "
                                          "have yet; available: .*CountVectorsFeaturizer"):
        get_component_class("SpacyNLP")
    assert not KNOWN_RASA_COMPONENTS_NOT_YET_AVAILABLE & set(NLU_COMPONENTS)


def test_unknown_name_should_suggest_the_closest_one() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'CountVectorsFeaturizer'.*Available"):
        get_component_class("CountVectorFeaturizer")


def test_importing_the_package_should_stay_light() -> None:
    code = ("import sys, parley.nlu.registry; "
            "print(any(m.startswith(('scipy', 'parley.nlu.classifiers')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
