"""``python -m parley …``: the ``parley`` command, as ``python -m rasa`` is Rasa's."""

from parley.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
