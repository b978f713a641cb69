"""test_cross_run.py - the decoder->encoder maps of `attnmap analyze` (docs/generation.md,
"Encoder-decoder models") on exports of random T5 (teacher forcing, per-step gradients) and
BART (greedy generation, shared gradients) models, against the relevance rules of Chefer et
al. 2021 as tests/fixtures/make_cross_reference.py re-creates them from the authors' code
(float64 torch on the exported float32 tensors): every step row of cross.attention_last,
cross.grad_x_attention, cross.rollout and cross.grad_rollout at the valid source positions,
0 at padded ones; the source tensors as exported. Measured: within 6e-8 relative."""
import glob
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import export_hf  # noqa: E402
import tiny_models  # noqa: E402
from conftest import run_cli  # noqa: E402
from test_export_seq2seq import write_data  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import make_cross_reference as ref  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module", params=["t5-teacher", "bart-generate"])
def run(request, tmp_path_factory, cli):
    kind, mode = request.param.split("-")
    d = tmp_path_factory.mktemp("cross-" + kind)
    model = tiny_models.make_seq2seq(str(d / "model"), kind)
    data = write_data(str(d / "data.jsonl"))
    extra = ["--generate", "--max-new-tokens", "4"] if mode == "generate" else ["--step-grads"]
    export_hf.main(["--model", model, "--data", data, "--out", str(d / "out"), "-q",
                    "--progress", "off", "--dtype", "f32", "--batch-size", "3", *extra])
    run_cli(cli, "analyze", str(d / "out"), "-o", str(d / "run"), "--quiet")
    return str(d / "out"), safetensors_numpy.load_file(str(d / "run" / "examples.safetensors"))


def test_maps_equal_the_authors_rules(run):
    out, ex = run
    first, worst = 0, 0.0
    for shard in sorted(glob.glob(out + "/*.safetensors")):
        t = safetensors_numpy.load_file(shard)
        L = len([k for k in t if k.startswith("cross_attentions.")])
        per_step = "step_cross_attention_grads.0" in t
        for b in range(t["attention_mask"].shape[0]):
            i = first + b
            dv = np.nonzero(t["attention_mask"][b])[0]
            ev = np.nonzero(t["encoder_attention_mask"][b])[0]
            assert list(ex["source_mask"][i][:len(t["encoder_attention_mask"][b])]) == \
                list(t["encoder_attention_mask"][b])
            assert ex["source_lengths"][i] == len(ev)
            assert list(ex["source_ids"][i][ev]) == list(t["encoder_input_ids"][b][ev])

            def crop(x, keys):
                return torch.from_numpy(x.astype(np.float64))[:, dv][:, :, keys]
            A = [crop(t["attentions.%d" % l][b], dv) for l in range(L)]
            C = [crop(t["cross_attentions.%d" % l][b], ev) for l in range(L)]
            for s in range(int(ex["steps"][i])):
                row = int(np.nonzero(dv == ex["step_positions"][i][s])[0][0])
                if per_step:
                    G = [crop(t["step_attention_grads.%d" % l][b, s], dv) for l in range(L)]
                    Gc = [crop(t["step_cross_attention_grads.%d" % l][b, s], ev) for l in range(L)]
                else:
                    G = [crop(t["attention_grads.%d" % l][b], dv) for l in range(L)]
                    Gc = [crop(t["cross_attention_grads.%d" % l][b], ev) for l in range(L)]
                want = {
                    "attention_last": C[-1].mean(0),
                    "grad_x_attention": sum(ref.avg_heads(C[l], Gc[l]) for l in range(L)),
                    "rollout": ref.decoder_rules([a.mean(0) for a in A], [c.mean(0) for c in C]),
                    "grad_rollout": ref.decoder_rules([ref.avg_heads(A[l], G[l]) for l in range(L)],
                                                      [ref.avg_heads(C[l], Gc[l]) for l in range(L)]),
                }
                for name, w in want.items():
                    got = ex["cross.%s.steps" % name][i, s]
                    w = w[row].numpy()
                    assert np.all(np.delete(got, ev) == 0)
                    err = np.abs(got[ev] - w) / (np.abs(w) + 1e-6)
                    worst = max(worst, float(err.max()))
        first += t["attention_mask"].shape[0]
    assert first == ex["source_mask"].shape[0]
    assert worst < 1e-6, worst
