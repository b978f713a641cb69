"""hf_tasks.py - kept for scripts that imported it from examples/: the capture helpers now
live in the Python package as attnmap.hf_tasks."""
import os
import sys

try:
    from attnmap.hf_tasks import *  # noqa: F401,F403
except ImportError:  # a checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    from attnmap.hf_tasks import *  # noqa: F401,F403
