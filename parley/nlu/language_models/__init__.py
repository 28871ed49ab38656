"""Offline pre-trained language models: BERT read from local files, run with PyTorch.

::

    model_files   model_weights → a local folder (or a model an installed package ships);
                  an identity of its files. No torch needed.
    safetensors   the weights file read with numpy, every offset checked
    wordpiece     BERT's basic tokenizer + WordPiece over vocab.txt
    bert          the encoder itself (torch)
    encoder       tokenizer + model: ids → hidden states in length-sorted batches (torch)

Importing this package imports neither torch nor the model; the featurizer
(:mod:`parley.nlu.featurizers.language_model`) loads what it needs when it is fitted.
"""
