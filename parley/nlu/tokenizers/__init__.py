"""Tokenizers: split ``message.text`` into :class:`~parley.nlu.tokens.Token` s."""
