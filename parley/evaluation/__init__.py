"""Testing a trained model on held-out data: ``parley test core`` / ``parley test``.

:mod:`parley.evaluation.core` replays test stories (``evaluate_core``) and writes Rasa's
reports; :mod:`parley.evaluation.story_writer` writes the stories with the wrong predictions
marked; :mod:`parley.evaluation.run` loads a model and runs it all, NLU included
(``run_tests``). The NLU metrics themselves live in :mod:`parley.nlu.evaluation` (entity
scores in :mod:`parley.evaluation.entities`), their files and plots are written by
:mod:`parley.evaluation.nlu_files`; :mod:`parley.evaluation.cross_validation` and
:mod:`parley.evaluation.comparison` train configs to test them (``--cross-validation``,
``-c a.yml b.yml``). The story walk is in :mod:`parley.dialogue.evaluation`.
"""
