"""Live runs of the long-context form (issue 14): `attnmap-export --form long --run DIR` and
attnmap.hf.analyze_model(..., form="long") stream each batch's queries, keys, values and
dO to the C run writer, whose run folder is byte for byte the one `attnmap analyze` writes
from the same batches exported as long-form shards (one shard per batch, batches of
different B and T); GQA Llama in F32, Mistral with its sliding window in BF16, BERT in F16,
ViT; a batch of the other form, or of other attention settings, is refused."""
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import attnmap  # noqa: E402
import attnmap.hf  # noqa: E402
import tiny_models  # noqa: E402
from test_live import assert_same_run, compare  # noqa: E402


@pytest.mark.parametrize("kind, batch, opts", [
    ("llama", 3, ("--dtype", "f32")),
    ("mistral", 2, ("--dtype", "bf16", "--embeds", "saliency")),
    ("bert", 4, ("--dtype", "f16", "--embeds", "none")),
    ("vit", 2, ("--dtype", "f32", "--embeds", "saliency")),
])
def test_long_live_equals_dump_and_analyze(kind, batch, opts, cli, tmp_path):
    folder = str(tmp_path / kind)
    if kind == "vit":
        model = tiny_models.make_vit(folder)
        data = tiny_models.write_images(str(tmp_path / "img"), n=5)
    else:
        model = (tiny_models.make_bert(folder) if kind == "bert"
                 else tiny_models.make_decoder(folder, kind))
        data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"))
    run, ref = compare(cli, tmp_path, model, data, batch, "--form", "long", *opts)
    summary = attnmap.read_run(run).summary
    shape = summary["provenance"]["live"]["shape"]
    assert (shape["heads"], shape["long"]["kv_heads"]) == \
        ((4, 2) if kind in ("llama", "mistral") else (2, 2))  # GQA: K, V not repeated
    assert "head.importance" in attnmap.read_run(run).examples


def test_analyze_model_long_on_a_model_object_and_refusals(cli, tmp_path):
    """analyze_model(form="long") on a Qwen2 model object loaded with transformers' default
    attention equals the exporter's long dump; the writer refuses a matrix-form batch after
    long-form ones, and a batch whose attention settings differ."""
    import transformers as tf

    path = tiny_models.make_decoder(str(tmp_path / "qwen2"), "qwen2")
    data = tiny_models.write_jsonl(str(tmp_path / "d.jsonl"), labels=False)
    tok = tf.AutoTokenizer.from_pretrained(path)
    model = tf.AutoModelForCausalLM.from_pretrained(path)  # no attn_implementation asked
    texts = list(tiny_models.TEXTS)
    run = attnmap.hf.analyze_model(model, [{"text": t, "id": "t%d" % i}
                                           for i, t in enumerate(texts)],
                                   str(tmp_path / "live"), processor=tok, form="long",
                                   batch_size=4, quiet=True)
    from test_live import dump_and_analyze
    ref = dump_and_analyze(cli, path, data, str(tmp_path / "dump"), 4, "--form", "long",
                           "--dtype", "f32")
    assert_same_run(run, ref)
    B, T, L, H, Hkv, d = 2, 5, 2, 4, 2, 8
    q = [torch.randn(B, H, T, d) for _ in range(L)]
    kv = [torch.randn(B, Hkv, T, d) for _ in range(L)]
    with attnmap.RunWriter(str(tmp_path / "w"), examples=6, max_tokens=T) as w:
        w.add(queries=q, keys=kv, values=kv, attention_output_grads=q,
              attention={"causal": True})
        with pytest.raises(attnmap.AttnmapError, match="batch 1: tensor attentions: this "
                           "batch holds the matrix form"):
            w.add(torch.softmax(torch.randn(L, B, H, T, T), -1))
        w.abort()
    with attnmap.RunWriter(str(tmp_path / "w2"), examples=6, max_tokens=T) as w:
        w.add(queries=q, keys=kv, values=kv, attention={"causal": True})
        with pytest.raises(attnmap.AttnmapError, match="batch 1: attnmap.attention: differs"):
            w.add(queries=q, keys=kv, values=kv, attention={"causal": False})
        w.abort()
    with pytest.raises(ValueError, match="unknown key 'window'"):
        with attnmap.RunWriter(str(tmp_path / "w3"), examples=2, max_tokens=T) as w:
            w.add(queries=q, keys=kv, values=kv, attention={"window": 3})
