#!/usr/bin/env python3
"""compare_ferret.py - one small case of attnmap-faithfulness's probabilities against ferret's
AOPC comprehensiveness and sufficiency (ferret-xai, g8a9/ferret,
ferret/evaluators/faithfulness_measures.py), for docs/faithfulness.md "attnmap and ferret".

A tiny random BERT classifier with a word-level vocabulary (tests/python/tiny_models.py, no
download; decode + re-tokenize gives back the same ids, so ferret's text round trip does not
change the input) and a fixed explanation of one 10-token sentence with distinct positive
scores. ferret needs no dependencies beyond torch, transformers, numpy and scipy for these
classes; install it apart and point FERRET_SITE at its site-packages:

    python3 -m venv /tmp/ferretenv && /tmp/ferretenv/bin/pip install --no-deps ferret-xai
    FERRET_SITE=/tmp/ferretenv/lib/python3.11/site-packages PYTHONPATH=python \\
        /work/pyenv/bin/python examples/compare_ferret.py
"""
import os
import sys
import tempfile
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
import tiny_models  # noqa: E402
from attnmap import faith_inputs  # noqa: E402

TEXT = "the film was very good but the plot was awful"
SCORES = [0.0, 0.3, 0.9, 0.2, 0.7, 1.0, 0.1, 0.4, 0.8, 0.6, 0.5, 0.0]  # [CLS] ... [SEP]


def ferret_classes():
    site = os.environ.get("FERRET_SITE")
    if not site:
        raise SystemExit("compare_ferret.py: set FERRET_SITE to ferret-xai's site-packages")
    # ferret/__init__.py imports the whole benchmark (datasets, shap, lime...): load only the
    # package path, then the evaluators, which need torch, transformers, numpy and scipy
    pkg = types.ModuleType("ferret")
    pkg.__path__ = [os.path.join(site, "ferret")]
    sys.modules["ferret"] = pkg
    from ferret.evaluators.faithfulness_measures import (AOPC_Comprehensiveness_Evaluation,
                                                         AOPC_Sufficiency_Evaluation)
    from ferret.explainers.explanation import Explanation
    return AOPC_Comprehensiveness_Evaluation, AOPC_Sufficiency_Evaluation, Explanation


def main():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    Comp, Suff, Explanation = ferret_classes()
    path = tiny_models.make_bert(os.path.join(tempfile.mkdtemp(), "bert"), seed=3)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(TEXT)
    ids = np.array(enc["input_ids"])
    assert len(ids) == len(SCORES) == 12
    with torch.no_grad():
        target = int(model(torch.from_numpy(ids[None])).logits.argmax(-1))
    expl = Explanation(TEXT, tok.convert_ids_to_tokens(ids), np.array(SCORES), "fixed", target)

    def forward(i, m):
        return model(input_ids=i, attention_mask=m).logits

    special = np.array(tok.get_special_tokens_mask(ids, already_has_special_tokens=True), bool)
    ex = [{"ids": ids, "rankable": ~special, "target": target}]
    rows = []
    for mode, remove in (("delete", True), ("mask", False)):
        t, _, _ = faith_inputs.probabilities(ex, {"fixed": [np.array(SCORES)]}, forward,
                                             bins=[10, 20, 50], mode=mode, seed=0,
                                             replace_id=tok.mask_token_id,
                                             pad_id=tok.pad_token_id, batch=8, torch=torch)
        p = float(t["faithfulness.p_full"][0])
        am_c = p - float(np.mean(t["faithfulness.p_removed"][0, 0]))
        am_s = p - float(np.mean(t["faithfulness.p_kept"][0, 0]))
        # ferret's default rationale sizes: 10%, 20%, ..., 100% (based_on "perc"); attnmap's
        # deletion / insertion curve points 1..10 hold the same removals for n = 10
        am_dc = p - float(np.mean(t["faithfulness.deletion"][0, 0, 1:]))
        am_ds = p - float(np.mean(t["faithfulness.insertion"][0, 0, 1:]))
        k_args = {"removal_args": {"remove_tokens": remove, "based_on": "k",
                                   "thresholds": [1, 2, 5]}}
        perc = {"removal_args": {"remove_tokens": remove}}
        fc = Comp(model, tok).compute_evaluation(expl, target, **k_args).score
        fs = Suff(model, tok).compute_evaluation(expl, target, **k_args).score
        fdc = Comp(model, tok).compute_evaluation(expl, target, **perc).score
        fds = Suff(model, tok).compute_evaluation(expl, target, **perc).score
        rows += [(mode, "AOPC comprehensiveness, bins 10/20/50% (k = 1, 2, 5)", am_c, fc),
                 (mode, "AOPC sufficiency, bins 10/20/50%", am_s, fs),
                 (mode, "mean over 10%..100% removed (ferret's default)", am_dc, fdc),
                 (mode, "mean over 10%..100% kept (ferret's default)", am_ds, fds)]
    print("target class %d, p_full %.6f" % (target, p))
    print("%-7s %-52s %10s %10s %9s" % ("mode", "value", "attnmap", "ferret", "|diff|"))
    worst = 0.0
    for mode, what, a, f in rows:
        print("%-7s %-52s %10.6f %10.6f %9.1e" % (mode, what, a, f, abs(a - f)))
        worst = max(worst, abs(a - f))
    print("largest |difference| %.1e" % worst)


if __name__ == "__main__":
    main()
