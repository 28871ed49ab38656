"""Generic training machinery: fingerprints, the training cache, model archives, names.

Nothing here knows about NLU or dialogue; the training engine builds on these pieces.
"""
