"""Tracker stores (conversations by sender id) and lock stores (one writer per conversation)."""
