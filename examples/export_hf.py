#!/usr/bin/env python3
"""export_hf.py - the exporter of Hugging Face models to attnmap shards, kept here as a thin
wrapper: the code is attnmap.exporter in the Python package (python/; installed, it is the
`attnmap-export` command). Works from a checkout without installing the package.

    python3 examples/export_hf.py --model MODEL_DIR --data dev.jsonl --out shards/
"""
import os
import sys

try:
    import attnmap.exporter as _exporter
except ImportError:  # a checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import attnmap.exporter as _exporter

main = _exporter.main
parse_args = _exporter.parse_args

if __name__ == "__main__":
    main()
