"""Policies: each predicts the next action from a conversation's states.

Import them through :mod:`parley.registry` (by their Rasa names) or from their
modules; this package imports nothing on its own.
"""
