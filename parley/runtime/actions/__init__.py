"""Actions the runtime runs: responses, Rasa's default actions, forms, slot extraction,
and custom actions through an executor."""
