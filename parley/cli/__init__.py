"""The ``parley`` command line: thin wrappers that parse arguments and call public functions."""
