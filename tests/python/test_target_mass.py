"""test_target_mass.py - the target token is left out of agreement by default and kept with
include_target=True (docs/analyses.md, "The target's own mass"), on one hand-made example
whose values are worked out below."""
import numpy as np

import attnmap


def one_example():
    """One layer, one head, four tokens; row 0 (the cls target) attends 0.1, 0.2, 0.3, 0.4."""
    A = np.full((1, 1, 1, 4, 4), 0.25, np.float32)
    A[0, 0, 0, 0] = [0.1, 0.2, 0.3, 0.4]
    return A


def test_target_left_out_of_agreement_unless_asked():
    A = one_example()
    kw = dict(methods=["attention_last", "rollout", "agreement"],
              pairs=["attention_last~rollout"])
    out = attnmap.analyze(A, **kw)
    keep = attnmap.analyze(A, include_target=True, **kw)
    # The stored maps do not change: rollout = rownorm(A + I)[0] = [1.1, .2, .3, .4] / 2
    # and attention_last = A[0], whatever include_target says.
    np.testing.assert_allclose(out.maps["rollout"][0], [0.55, 0.1, 0.15, 0.2], rtol=1e-6)
    np.testing.assert_allclose(keep.maps["rollout"][0], out.maps["rollout"][0])
    np.testing.assert_allclose(out.maps["attention_last"][0], [0.1, 0.2, 0.3, 0.4],
                               rtol=1e-6)
    # With the target: ranks [4,1,2,3] vs [1,2,3,4], sum d^2 = 12, rho = 1 - 6*12/(4*15)
    # = -0.2 (the identity's 0.5 on the target decides the sign). Without it (Chefer's
    # code sets that entry to the row minimum or 0; vit-explain drops it): [.1,.15,.2] vs
    # [.2,.3,.4], rho = 1.
    assert abs(float(keep.agreement["spearman"][0, 0]) - (-0.2)) < 1e-6
    assert abs(float(out.agreement["spearman"][0, 0]) - 1.0) < 1e-6


def test_mean_target_excludes_nothing():
    A = one_example()
    kw = dict(methods=["attention_last", "rollout", "agreement"], target="mean",
              pairs=["attention_last~rollout"])
    a = attnmap.analyze(A, **kw).agreement["spearman"][0, 0]
    b = attnmap.analyze(A, include_target=True, **kw).agreement["spearman"][0, 0]
    assert a == b
