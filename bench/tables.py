#!/usr/bin/env python3
"""tables.py - the tables of bench/run.sh, from its raw log.

  python3 bench/tables.py analyze-line RUN T0 T1 THREADS [CPU_S]  one JSON line for an
      `attnmap analyze` run: wall seconds T1-T0 and summary.json's own timings
  python3 bench/tables.py tables RAW_LOG DATA              the Markdown tables
  python3 bench/tables.py e2e RAW_LOG                      bench/run.sh --e2e's table

The raw log holds "@@ key=value ..." headers, each followed by what the measured program
printed: a JSON line (peers, analyze-line, gpu_limits) or bench_cpu's "RESULT k=v ..."
line. Byte counts for GB/s are the stored attention bytes per example (and the gradient
bytes when the implementation reads them), the same for every row of a case.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
import common  # noqa: E402

READS_GRADS = {"all", "analyses", "grad_rollout", "all-gpu"}
GROUP_TEXT = {"all": "all analyses but flow", "analyses": "analyses, no agreement",
              "rollout": "rollout", "grad_rollout": "gradient rollout",
              "all-gpu": "all analyses but flow (GPU)"}


def analyze_line(run, t0, t1, threads, cpu=None):
    with open(os.path.join(run, "summary.json")) as f:
        doc = json.load(f)
    n = doc["dataset"]["examples"]
    wall = float(t1) - float(t0)
    t = doc["provenance"]["timings"]
    print(json.dumps({"examples": n, "seconds": wall, "examples_per_s": n / wall,
                      "analyze_s": t.get("analyze_s"), "checksum_s": t.get("checksum_s"),
                      "total_s": t.get("total_s"), "threads": int(threads),
                      "checksum": doc["provenance"]["options"].get("checksums", None),
                      "cpu_s": float(cpu) if cpu else None}))


def parse(path):
    """[(header dict, payload dict)] in log order; the free-text @@ lines apart."""
    out, notes, head = [], [], None
    for line in open(path):
        line = line.strip()
        if line.startswith("@@"):
            body = line[2:].strip()
            if "=" in body.split(" ")[0]:
                head = dict(kv.split("=", 1) for kv in body.split() if "=" in kv)
            else:
                notes.append(body)
                head = None
        elif head is not None and line.startswith("{"):
            out.append((head, json.loads(line)))
        elif head is not None and line.startswith("RESULT_IO"):
            out.append((head, {k: float(v) for k, v in
                               (x.split("=", 1) for x in line.split()[1:])}))
        elif head is not None and line.startswith("RESULT"):
            kv = dict(x.split("=", 1) for x in line.split()[1:])
            res = {k: (float(v) if k not in ("simd",) else v) for k, v in kv.items()}
            res["examples_per_s"] = res["examples"] / res["pass_s"]
            out.append((head, res))
    return out, notes


def stored_bytes(data, case, grads):
    ds = common.Dataset(os.path.join(data, case))
    shard = ds.shards[0]
    a = shard["attentions"][0]
    per = a.nbytes / a.shape[1]
    if grads and "attention_grads" in shard:
        per *= 2
    return per


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    if x >= 100:
        return "%.0f" % x
    return ("%%.%dg" % digits) % x


def case_table(rows, data):
    """The side-by-side table: one block per case."""
    lines = ["| case | work | implementation | examples/s | GB/s | share of the limit | "
             "attnmap ÷ this |", "|---|---|---|---|---|---|---|"]
    limits = []
    cases = []
    for h, _ in rows:
        if "case" in h and "scaling" not in h and h["case"] not in cases:
            cases.append(h["case"])
    for case in cases:
        mine = [(h, r) for h, r in rows if h.get("case") == case and "scaling" not in h]
        bench = next((r for h, r in mine if h["impl"] == "attnmap_pass" and
                      h["group"] == "all"), None)
        bw = bench["read_gbs"] if bench else None
        ref = {}
        for h, r in mine:  # the reference of a group: attnmap analyze, default options
            if h["impl"] == "attnmap_analyze" and h["group"] not in ref:
                ref[h["group"]] = r["examples_per_s"]
        for h, r in mine:  # the pass alone, for the peers without agreement
            if h["impl"] == "attnmap_pass" and h["group"] == "all":
                ref["analyses"] = r["examples_per_s"]
        if bench:
            floor = max(bench["mem_floor_s"], bench["entropy_floor_s"])
            limits.append("%s: memory read %.1f GB/s (floor %.3f s), entropy loop %.3f s "
                          "over the same attention rows; the pass %.3f s = %.0f%% of the "
                          "slower floor; CPU use %.0f%%; check against the plain loops %s"
                          % (case, bw, bench["mem_floor_s"], bench["entropy_floor_s"],
                             bench["pass_s"], 100 * floor / bench["pass_s"],
                             100 * bench["util"],
                             "ok" if bench["check"] <= 1 else "FAILED %g" % bench["check"]))
        for h, r in mine:
            g, impl = h["group"], h["impl"]
            if "failed" in r:
                lines.append("| %s | %s | %s | failed: %s | - | - | - |" % (
                    case, GROUP_TEXT.get(g, g), impl, r["failed"].replace("|", "/")))
                continue
            grads = g in READS_GRADS
            per = stored_bytes(data, case, grads)
            eps = r["examples_per_s"]
            gbs = eps * per / 1e9
            share, ratio = "-", "-"
            name = impl
            if impl == "attnmap_analyze":
                name = {"default": "attnmap analyze", "no-checksum":
                        "attnmap analyze --no-checksum", "cuda":
                        "attnmap analyze --backend cuda"}.get(
                    h.get("label"), "attnmap analyze --methods %s" % g)
                if bw:
                    share = "%.0f%% of read bw" % (100 * gbs / bw)
            elif impl == "attnmap_pass":
                rows_here = [("attnmap pass (bench_cpu)", r["examples_per_s"]),
                             ("attnmap pass + saliency + agreement",
                              r["examples"] / r["compute_s"])]
                floor = max(r["mem_floor_s"], r["entropy_floor_s"])
                if g != "all":  # a single method: the pass alone
                    rows_here = [("attnmap pass --methods %s (bench_cpu)" % g,
                                  r["examples_per_s"])]
                for k, (nm, e) in enumerate(rows_here):
                    sh = ("%.0f%% of floor" % (100 * floor / r["pass_s"])) if k == 0 and \
                        g == "all" else "-"
                    lines.append("| %s | %s | %s | %s | %s | %s | - |" % (
                        case, GROUP_TEXT.get(g, g), nm, fmt(e), fmt(e * per / 1e9), sh))
                continue
            else:
                if not r.get("check_ok", True):
                    name += " (CHECK FAILED)"
                if bw:
                    share = "%s%% of read bw" % fmt(100 * gbs / bw, 2)
                base = ref.get(g)
                if base:
                    ratio = "%.1f×" % (base / eps)
                if r.get("examples") and r["examples"] < bench_examples(mine):
                    name += " (first %d examples)" % r["examples"]
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                case, GROUP_TEXT.get(g, g), name, fmt(eps), fmt(gbs), share, ratio))
    return lines, limits


def bench_examples(mine):
    return max((r.get("examples", 0) for _, r in mine if "failed" not in r), default=0)


def scaling_tables(rows):
    out = []
    ex = [(int(h["value"]), r) for h, r in rows if h.get("scaling") == "examples"]
    if ex:
        out += ["", "Time against the number of examples (bert128-f16, the pass):", "",
                "| examples | seconds | examples/s |", "|---|---|---|"]
        out += ["| %d | %.4f | %s |" % (n, r["pass_s"], fmt(r["examples_per_s"]))
                for n, r in ex]
    tk = {}
    for h, r in rows:
        if h.get("scaling") == "tokens":
            s = r["pass_s"] / r["examples"] if "pass_s" in r else 1 / r["examples_per_s"]
            tk.setdefault(int(h["value"]), {})[h["impl"]] = s
    if tk:
        out += ["", "Time per example against T (L=12, H=12, rollout alone; slope = the "
                "exponent of T between neighbouring rows):", "",
                "| T | attnmap row form s/example | slope | joint_attention_loop (full "
                "matrices) s/example | slope |", "|---|---|---|---|---|"]
        prev = None
        for T in sorted(tk):
            a = tk[T].get("attnmap_rollout_pass")
            j = tk[T].get("joint_attention_loop")
            sa = sj = "-"
            if prev:
                pT, pa, pj = prev
                if a and pa:
                    sa = "%.2f" % (math.log(a / pa) / math.log(T / pT))
                if j and pj:
                    sj = "%.2f" % (math.log(j / pj) / math.log(T / pT))
            out.append("| %d | %s | %s | %s | %s |" % (T, fmt(a), sa, fmt(j), sj))
            prev = (T, a, j)
    th = [(int(h["value"]), r) for h, r in rows if h.get("scaling") == "threads"]
    if th:
        base = th[0][1]["pass_s"]
        out += ["", "Time against threads (bert128-f16, the pass):", "",
                "| threads | seconds | examples/s | speed-up | CPU use |", "|---|---|---|---|---|"]
        out += ["| %d | %.4f | %s | %.2f× | %.0f%% |" % (t, r["pass_s"],
                                                      fmt(r["examples_per_s"]),
                                                      base / r["pass_s"], 100 * r["util"])
                for t, r in th]
    return out


def tables(log, data):
    rows, notes = parse(log)
    gpu = [r for h, r in rows if h.get("impl") == "gpu_limits"]
    rows = [(h, r) for h, r in rows if h.get("impl") != "gpu_limits"]
    lines, limits = case_table(rows, data)
    print("\n".join("- " + n for n in notes))
    print()
    print("\n".join(lines))
    print()
    print("Limits measured in the same run:")
    print()
    print("\n".join("- " + x for x in limits))
    for r in gpu:
        print("- GPU: " + ", ".join("%s %s" % (k, v) for k, v in r.items()))
    print("\n".join(scaling_tables(rows)))


def e2e(log):
    """bench/run.sh --e2e: end to end (median of 3, process start included) against the
    pass and the read floor, per case; the peer on the 64-example file."""
    rows, notes = parse(log)
    # the start `attnmap analyze` pays (its second exec included), else the bare one
    starts = {n.split(" (")[0]: float(n.rsplit(":", 1)[1].split()[0]) for n in notes
              if n.startswith(("process start", "analyze start"))}
    start = starts.get("analyze start", starts.get("process start"))
    print("\n".join("- " + n for n in notes))
    print()
    print("| case | examples | input GB | analyze s (examples/s) | analyze --no-checksum s "
          "(examples/s) | pass s (examples/s) | pass + saliency + agreement s | read floor s "
          "| analyze ÷ pass | --no-checksum ÷ pass | CPU-s: analyze / --no-checksum / pass / "
          "pass+sal+agr | CPU-s: CRC-32C / mapping (found) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    peer = next((r for h, r in rows if h.get("impl") == "torch_batched"), None)
    goals = []
    for case in dict.fromkeys(h["case"] for h, _ in rows if h.get("e2e")):
        runs, cpus = {}, {}
        for h, r in rows:
            if h.get("case") == case and h.get("impl") == "attnmap_analyze":
                runs.setdefault(h["label"], []).append(r["seconds"])
                if r.get("cpu_s") is not None:
                    cpus.setdefault(h["label"], []).append(r["cpu_s"])
        p = next((r for h, r in rows if h.get("case") == case and
                  h["impl"] == "attnmap_pass"), None)
        io = next((r for h, r in rows if h.get("case") == case and h["impl"] == "io"), None)
        if p is None or "default" not in runs or "no-checksum" not in runs:
            print("| %s | incomplete in this log |%s" % (case, " |" * 10))
            continue
        nbytes = float(next(h["bytes_file"] for h, _ in rows if h.get("case") == case and
                            h["impl"] == "attnmap_pass"))
        n = p["examples"]
        med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
        mcpu = {k: "%.2f" % sorted(v)[len(v) // 2] for k, v in cpus.items()}
        floor = nbytes / (p["read_gbs"] * 1e9)
        cell = lambda s: "%.3f (%s)" % (s, fmt(n / s))  # noqa: E731
        pcpu = p["threads"] * p["util"]  # CPU seconds per wall second in bench_cpu
        iocell = ("%.2f / %.2f (%.2f)" % (io["crc_cpu_s"], io["map_cpu_s"] + io["unmap_cpu_s"],
                                          io["found_map_cpu_s"] + io["found_unmap_cpu_s"])
                  if io else "-")
        print("| %s | %d | %.2f | %s | %s | %s | %.3f | %.3f | %.0f%% | %.0f%% | %s / %s / "
              "%.2f / %.2f | %s |" % (
                  case, n, nbytes / 1e9, cell(med["default"]), cell(med["no-checksum"]),
                  cell(p["pass_s"]), p["compute_s"], floor, 100 * p["pass_s"] / med["default"],
                  100 * p["pass_s"] / med["no-checksum"], mcpu.get("default", "-"),
                  mcpu.get("no-checksum", "-"), p["pass_s"] * pcpu, p["compute_s"] * pcpu,
                  iocell))
        if case == "bert128-64" and peer and "examples_per_s" in peer:
            goals.append("bert128-64: attnmap analyze %s examples/s end to end (process start "
                         "%.3f s included) = %.1f× torch_batched's compute-only %s "
                         "examples/s" % (fmt(n / med["default"]), start or float("nan"),
                                         n / med["default"] / peer["examples_per_s"],
                                         fmt(peer["examples_per_s"])))
    if peer and "failed" in peer:
        goals.append("torch_batched failed: %s" % peer["failed"])
    print()
    print("\n".join("- " + g for g in goals))


if __name__ == "__main__":
    if sys.argv[1] == "analyze-line":
        analyze_line(*sys.argv[2:7])
    elif sys.argv[1] == "e2e":
        e2e(sys.argv[2])
    elif sys.argv[1] == "tables":
        tables(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: tables.py analyze-line RUN T0 T1 THREADS [CPU_S] | tables LOG DATA | e2e LOG")
