"""Entity extractors and processors: write ``message.data["entities"]`` (Rasa-shaped dicts)."""

ENTITIES_KEY = "entities"
