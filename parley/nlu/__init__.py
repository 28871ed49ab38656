"""NLU pipeline components with Rasa 3.x names and parameters.

Pick classes by their config.yml name with :func:`parley.registry.get_class`;
importing this package imports nothing heavy.

The contract every component here keeps (on top of :class:`parley.component.Component`):

- ``__init__(self, *, param=default, ...)`` stores each parameter unchanged under its own
  name and does no work; config.yml keys are these names (Rasa's, where Rasa has them).
- ``fit(training_data) -> self`` learns into attributes ending in ``_``. Components with
  nothing to learn still fit (they check their parameters and set ``fitted_``), so that
  using any component before ``fit`` raises :class:`~parley.errors.NotFittedError`.
  Parameter errors surface at ``fit`` as :class:`~parley.errors.ConfigError`.
- ``process(messages)`` works on a batch and writes only into ``message.data``; the engine
  also runs it on the training examples (after that component's ``fit``) so later
  components see earlier output. Annotations (``message.intent``, ``message.entities``)
  are never touched. The keys written:

  ======================  ======================================================================
  ``"tokens"``            list of :class:`~parley.nlu.tokens.Token` (text, start, end)
  ``"intent_tokens"``     the intent label's tokens, for messages that have a label
  ``"features"``          list of :class:`~parley.nlu.features.Features`, one per featurizer:
                          ``sequence`` ``n_tokens × dim``, ``sentence`` ``1 × dim`` — CSR
                          from sparse featurizers, float32 arrays from dense ones
                          (LanguageModelFeaturizer) — ``origin`` the featurizer's name
  ``"intent"``            ``{"name": str | None, "confidence": float}``
  ``"intent_ranking"``    list of such dicts, most likely first
  ``"entities"``          list of Rasa entity dicts ``{"entity", "start", "end", "value",
                          "extractor", ["processors"]}``; learned extractors add
                          ``confidence_entity`` and, with roles/groups, ``role``/``group``
                          and ``confidence_role``/``confidence_group``
  ``"response_selector"`` ResponseSelector's result, in Rasa's shape
  ======================  ======================================================================

- ``save(directory)`` / ``load(directory)`` are :class:`~parley.component.Component`'s
  template over each component's ``_state`` / ``_set_state`` hooks: ``params.json``,
  ``state.json`` and ``arrays.npz`` (``allow_pickle=False`` both ways) — never pickle.
  Loading a directory saved by another component, holding nothing, or damaged raises
  :class:`~parley.errors.ModelArchiveError` naming the file.
- Training is deterministic: the same data and parameters give the same outputs.
"""
