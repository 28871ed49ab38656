"""TED's network and its training (the policy itself is ``parley.dialogue.policies.ted``)."""
