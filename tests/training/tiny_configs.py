"""The smallest learned pipeline (DIET, 3 epochs), for tests that train it beside policies."""

TINY_PIPELINE = """\
language: en
pipeline:
- name: WhitespaceTokenizer
- name: CountVectorsFeaturizer
- name: DIETClassifier
  epochs: 3
"""
