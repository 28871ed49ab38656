"""The intent keys classifiers write, in Rasa's parse shape."""

from __future__ import annotations

INTENT_KEY = "intent"
INTENT_RANKING_KEY = "intent_ranking"
FALLBACK_INTENT = "nlu_fallback"
# Rasa's default: report the 10 most likely intents; 0 reports all.
LABEL_RANKING_LENGTH = 10
