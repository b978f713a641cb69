"""test_module.py - the Python module (python/attnmap) against the CLI: analyze() on the
tensors of a dataset held in memory must give exactly what `attnmap analyze` writes for
the same dataset, for several option sets; torch tensors, per-layer tuples and BF16
inputs; errors; read_run; and the ctypes mirrors of attnmap.h's structs."""
import os
import re

import numpy as np
import pytest

import attnmap
from attnmap import _lib
from conftest import run_cli

OPTION_SETS = [
    ({}, []),
    ({"target": "last", "fusion": "max", "discard": 0.2, "normalize": "minmax"},
     ["--target", "last", "--fusion", "max", "--discard", "0.2", "--normalize", "minmax"]),
    ({"target": "mean", "topk": 3, "include_special": True, "all_rows": True},
     ["--target", "mean", "--topk", "3", "--include-special", "--all-rows"]),
    ({"target": -2, "methods": ["rollout", "grad_rollout", "saliency", "agreement"],
      "pairs": ["rollout~saliency.ig", "grad_rollout~saliency.grad_x_input"]},
     ["--target=-2", "--methods", "rollout,grad_rollout,saliency,agreement", "--pairs",
      "rollout~saliency.ig,grad_rollout~saliency.grad_x_input"]),
]


@pytest.fixture(scope="module")
def synthetic(repo):
    path = os.path.join(repo, "examples", "data", "synthetic")
    return path, attnmap.read_dataset(path)


def analyze_shard(t, **kw):
    return attnmap.analyze(t["attentions"], t["attention_grads"],
                           attention_mask=t["attention_mask"],
                           special_tokens_mask=t["special_tokens_mask"],
                           saliency={"ig": t["saliency.ig"]},
                           inputs_embeds=t["inputs_embeds"],
                           inputs_embeds_grads=t["inputs_embeds_grads"], threads=1, **kw)


def assert_same(got, want, name):
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(got, want, err_msg=name)  # NaN == NaN here


@pytest.mark.parametrize("kw,flags", OPTION_SETS, ids=["defaults", "last-max-discard",
                                                       "mean-rows", "index-pairs"])
def test_analyze_equals_cli(tmp_path, cli, synthetic, kw, flags):
    path, shards = synthetic
    run_dir = str(tmp_path / "run")
    run_cli(cli, "analyze", path, "-o", run_dir, "-q", "--threads", "1", *flags)
    run = attnmap.read_run(run_dir)
    row = 0
    for t, _meta in shards:
        res = analyze_shard(t, **kw)
        B, T = t["attention_mask"].shape
        assert res.pairs == run.pairs
        got = res.tensors()
        names = set(got) - {"mask", "lengths"}
        expect = {k for k in run.examples
                  if k not in ("mask", "lengths", "labels", "predictions", "input_ids",
                               "special_tokens_mask")}
        assert names == expect
        for name, value in got.items():
            want = run.examples[name][row:row + B]
            if value.ndim >= 2 and name not in ("mask",) and not name.startswith(
                    ("head.", "agreement.")):
                want = want[:, :T, :T] if value.ndim == 3 else want[:, :T]
            if name == "mask":
                want = want[:, :T]
            assert_same(value, want, name)
        row += B
    assert row == len(run.examples["lengths"])


def test_torch_tuple_and_bf16(synthetic):
    torch = pytest.importorskip("torch")
    t = synthetic[1][0][0]
    ref = analyze_shard(t)
    att = tuple(torch.from_numpy(t["attentions"][l].copy()) for l in range(len(t["attentions"])))
    grd = tuple(torch.from_numpy(t["attention_grads"][l].copy()).requires_grad_(False)
                for l in range(len(t["attention_grads"])))
    res = attnmap.analyze(att, grd, attention_mask=torch.from_numpy(t["attention_mask"]),
                          special_tokens_mask=torch.from_numpy(t["special_tokens_mask"]),
                          saliency={"ig": torch.from_numpy(t["saliency.ig"])},
                          inputs_embeds=torch.from_numpy(t["inputs_embeds"]),
                          inputs_embeds_grads=torch.from_numpy(t["inputs_embeds_grads"]))
    for name, v in ref.tensors().items():
        assert_same(res.tensors()[name], v, name)
    # BF16 (no numpy type): the same attentions rounded to bfloat16 against numpy float32
    # holding the identical values
    a16 = torch.from_numpy(t["attentions"].astype(np.float32)).to(torch.bfloat16)
    g16 = torch.from_numpy(t["attention_grads"].astype(np.float32)).to(torch.bfloat16)
    r16 = attnmap.analyze(a16, g16, attention_mask=t["attention_mask"])
    r32 = attnmap.analyze(a16.float().numpy(), g16.float().numpy(),
                          attention_mask=t["attention_mask"], row_tolerance=0.016)
    for name in ("rollout", "grad_rollout", "attention_last"):
        assert_same(r16.maps[name], r32.maps[name], name)


def test_context_reuse_and_info(synthetic):
    t = synthetic[1][1][0]
    with attnmap.Context("cpu", threads=2) as ctx:
        assert ctx.backend == "cpu" and ctx.threads == 2 and ctx.device
        a = ctx.analyze(t["attentions"], attention_mask=t["attention_mask"])
        b = ctx.analyze(t["attentions"], attention_mask=t["attention_mask"])
    assert_same(a.maps["rollout"], b.maps["rollout"], "rollout")
    assert "grad_rollout" not in a.maps and a.head_importance is None
    assert a.lengths.tolist() == t["attention_mask"].sum(1).tolist()


def test_errors(synthetic):
    t = synthetic[1][0][0]
    att = t["attentions"].astype(np.float32)
    bad = att.copy()
    bad[2, 5, 1, 0, 0] += 0.5  # layer 2, example 5, head 1: a row no longer sums to 1
    mask = t["attention_mask"]
    first = int(np.flatnonzero(mask[5])[0])
    bad[2, 5, 1, first, first] += 0.5
    with pytest.raises(attnmap.AttnmapError) as e:
        attnmap.analyze(bad, attention_mask=mask)
    assert e.value.status == "BAD_INPUT"
    assert "attentions.2" in str(e.value) and "example 5" in str(e.value)
    m2 = mask.copy()
    m2[0, 0] = 2
    with pytest.raises(attnmap.AttnmapError, match="attention_mask.*not 0 or 1"):
        attnmap.analyze(att, attention_mask=m2)
    with pytest.raises(attnmap.AttnmapError, match="needed by grad_rollout"):
        attnmap.analyze(att, attention_mask=mask, methods=["grad_rollout"])
    with pytest.raises(ValueError, match="attentions"):
        attnmap.analyze(att[0], attention_mask=mask)
    with pytest.raises(ValueError, match="target"):
        attnmap.analyze(att, target="first")


class FakeDeviceArray:
    """Looks like a CUDA array (__cuda_array_interface__) without a GPU."""

    def __init__(self, shape, typestr="<f4"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr,
                                         "data": (0x10000, False), "version": 3,
                                         "strides": None}


def test_device_pointers_refused_on_cpu():
    shape = (2, 1, 2, 3, 3)
    with pytest.raises(attnmap.AttnmapError) as e:
        attnmap.analyze(FakeDeviceArray(shape), backend="cpu")
    assert e.value.status == "UNSUPPORTED"
    assert "device pointers need the cuda backend" in str(e.value)


def test_read_run_matches_the_safetensors_package(tmp_path, cli, synthetic):
    """read_run goes through libattnmap's reader; the safetensors package agrees."""
    from safetensors.numpy import load_file
    run_dir = str(tmp_path / "run")
    run_cli(cli, "analyze", synthetic[0], "-o", run_dir, "-q")
    run = attnmap.read_run(run_dir)
    other = load_file(os.path.join(run_dir, "examples.safetensors"))
    assert set(other) == set(run.examples)
    for k in other:
        assert_same(other[k], run.examples[k], k)
    assert run.summary["dataset"]["examples"] == 64
    assert run.agreement("spearman", run.pairs[0]).shape == (64,)
    assert "rollout" in run.maps and "head.entropy" not in run.maps
    assert list(run.maps) == run.summary["provenance"]["options"]["maps"]


def test_read_run_refuses_what_the_cli_refuses(tmp_path, cli, synthetic):
    """An edited run folder: the same one-line error as `attnmap report`."""
    import json
    run_dir = str(tmp_path / "run")
    run_cli(cli, "analyze", synthetic[0], "-o", run_dir, "-q")
    path = os.path.join(run_dir, "summary.json")
    doc = json.load(open(path))
    doc["provenance"]["options"]["pairs"].reverse()
    json.dump(doc, open(path, "w"))
    with pytest.raises(attnmap.AttnmapError) as e:
        attnmap.read_run(run_dir)
    assert e.value.status == "BAD_INPUT"
    assert "provenance.options.pairs" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(attnmap.AttnmapError) as e:
        attnmap.read_run(str(tmp_path / "nowhere"))
    assert "summary.json: cannot read" in str(e.value)
    with pytest.raises(attnmap.AttnmapError) as e:
        attnmap.read_safetensors(path)
    assert e.value.status == "BAD_INPUT" and "summary.json" in str(e.value)


@pytest.mark.parametrize("kw,phrase", [
    ({"threads": 100000}, "threads '100000': expected an integer in [0,1024]"),
    ({"target": 2**32 + 3}, "target '4294967299'"),
    ({"topk": 0}, "topk '0': expected an integer in [1,1000000]"),
    ({"discard": 1.0}, "discard '1.0': expected a number in [0,1)"),
    ({"discard": float("nan")}, "discard 'nan'"),
    ({"fusion": "median"}, "fusion 'median': expected one of mean,max,min"),
    ({"methods": ["rollout", "bogus"]}, "methods 'rollout,bogus'"),
    ({"topk": "5"}, None),
    ({"topk": True}, "topk: expected a number"),
])
def test_options_are_checked_by_the_library(synthetic, kw, phrase):
    t = synthetic[1][0][0]
    if phrase is None:  # text of an integer is the integer
        analyze_shard(t, **kw)
        return
    with pytest.raises(ValueError) as e:
        analyze_shard(t, **{k: v for k, v in kw.items() if k != "threads"}) \
            if "threads" not in kw else attnmap.Context("cpu", kw["threads"])
    assert phrase in str(e.value), str(e.value)


def test_names_and_bounds_come_from_the_library():
    assert _lib.STATUS_NAMES[2] == "BAD_INPUT"
    assert set(_lib.METHODS) >= {"rollout", "grad_rollout", "flow", "agreement"}
    assert _lib.OPTIONS["threads"].max == 1024
    assert _lib.FUSIONS == {"mean": 0, "max": 1, "min": 2}


def test_import_fails_on_a_struct_of_another_size(monkeypatch):
    class Wrong(_lib.ctypes.Structure):
        _fields_ = [("x", _lib.ctypes.c_int)]
    monkeypatch.setattr(_lib, "Plan", Wrong)
    with pytest.raises(ImportError) as e:
        _lib._check_abi()
    assert "am_plan_t is" in str(e.value) and "different versions" in str(e.value)


STRUCTS = {"am_plan": _lib.Plan, "am_arrays": _lib.Arrays,
           "am_arrays_result": _lib.ArraysResult, "am_ctx_options": _lib.CtxOptions,
           "am_run_options": _lib.RunOptions, "am_report_options": _lib.ReportOptions,
           "am_settings": _lib.Settings, "am_option_info": _lib.OptionInfo,
           "am_stream_info": _lib.StreamInfo, "am_batch_extras": _lib.BatchExtras}


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_mirrors_follow_the_header(repo, name):
    text = open(os.path.join(repo, "include", "attnmap.h")).read()
    body = re.search(r"typedef struct %s \{(.*?)\} %s_t;" % (name, name), text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for decl in body.split(";"):
        decl = decl.strip()
        if decl:
            names = decl.split(None, 1)[1] if not decl.startswith("const") else \
                re.sub(r"^const\s+\w+\s*", "", decl)
            for part in names.split(","):
                fields.append(re.sub(r"[\s*]|const", "", part))
    assert fields == [f[0] for f in STRUCTS[name]._fields_]


def test_installed_package_is_used():
    """scripts/test.sh installs python/ with pip and sets ATTNMAP_PYTHON_INSTALLED=1."""
    if os.environ.get("ATTNMAP_PYTHON_INSTALLED") != "1":
        pytest.skip("not run from scripts/test.sh (package taken from python/)")
    assert "site-packages" in attnmap.__file__
    assert os.path.samefile(attnmap.library_path, os.environ["ATTNMAP_LIBRARY"])
