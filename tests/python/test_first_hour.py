"""test_first_hour.py - what a new user meets first (issue 22): messages for models without
attention weights, the exporter as a package command, labels of causal LMs, the recorded
target, progress lines, shards sized by memory and resumed exports."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import attnmap
from conftest import run_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# What output_attentions gives when the attention implementation (SDPA, flash) computes no
# weights: transformers >= 4.48 returns a tuple of None per layer (4.46, pinned here, still
# falls back to eager), other wrappers an empty tuple; np.asarray of it an object array.
@pytest.mark.parametrize("atts, why", [
    ((), "attentions is an empty tuple"),
    ((None, None), "attentions[0] is None (2 of 2 layers)"),
    (np.array([None, None], dtype=object), "attentions is an array of Python objects"),
])
def test_sdpa_outputs_say_there_are_no_attention_weights(atts, why):
    with pytest.raises(ValueError) as e:
        attnmap.analyze(atts)
    msg = str(e.value)
    assert why in msg and "returned no attention weights" in msg
    assert 'attn_implementation="eager"' in msg and "output_attentions=True" in msg
