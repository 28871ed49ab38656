"""Intent classifiers: write ``message.data["intent"]`` (and ``"intent_ranking"``)."""
