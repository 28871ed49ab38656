"""Testing a trained model on held-out data: ``parley test core`` / ``parley test``.

:mod:`parley.evaluation.core` replays test stories (``evaluate_core``) and writes Rasa's
reports; :mod:`parley.evaluation.story_writer` writes the stories with the wrong predictions
marked; :mod:`parley.evaluation.run` loads a model and runs it all, NLU included
(``run_tests``). The NLU metrics themselves live
in :mod:`parley.nlu.evaluation`; the story walk in :mod:`parley.dialogue.evaluation`.
"""
