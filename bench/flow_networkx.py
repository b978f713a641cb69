#!/usr/bin/python3
"""flow_networkx.py - the networkx peer of bench/bench_flow.c: attention flow as the
authors compute it (samiraabnar/attention_flow), timed sink by sink.

For example 0 of ATTENTIONS.npy ([L,N,H,n,n] float32, written by bench_flow):
  - the layer matrices of the authors' notebooks: head mean, + I, division by the row sums;
  - the graph of attention_graph_util.py's get_adjmat / draw_attention_graph: node (l, i)
    is l*n + i, an edge from layer l node k_f to layer l-1 node k_t with capacity
    mat[l-1][k_f][k_t] for every nonzero entry, in an nx.DiGraph;
  - compute_flows' inner call for the top-layer node u of token 0 and input nodes v:
    nx.maximum_flow_value(G, u, v, flow_func=nx.algorithms.flow.edmonds_karp).
Prints "graph seconds S" once, then "sink J value V seconds S cpu C" (wall and process CPU
time) for the first --sinks input nodes (the benchmark extrapolates the time per example from these; the graph's
construction is left out of the per-sink time, which favours networkx).

Run with Debian's python3-networkx (2.8):
  /usr/bin/python3 bench/flow_networkx.py ATTENTIONS.npy [--sinks K]
"""
import argparse
import time

import networkx as nx
import numpy as np


def layer_matrices(att_mat):
    """att_mat: [L,H,n,n] of one example -> [L,n,n] as the authors' notebooks build it."""
    res_att_mat = att_mat.sum(axis=1) / att_mat.shape[1]
    res_att_mat = res_att_mat + np.eye(res_att_mat.shape[1])[None, ...]
    return res_att_mat / res_att_mat.sum(axis=-1)[..., None]


def attention_graph(mat):
    n_layers, length, _ = mat.shape
    G = nx.DiGraph()
    G.add_nodes_from(range((n_layers + 1) * length))
    for i in range(1, n_layers + 1):
        for k_f in range(length):
            index_from = i * length + k_f
            for k_t in range(length):
                c = mat[i - 1][k_f][k_t]
                if c != 0:
                    G.add_edge(index_from, (i - 1) * length + k_t, capacity=c)
    return G


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("attentions")
    ap.add_argument("--sinks", type=int, default=4)
    args = ap.parse_args()
    att = np.load(args.attentions, mmap_mode="r")
    L, n = att.shape[0], att.shape[3]
    t0 = time.perf_counter()
    G = attention_graph(layer_matrices(np.asarray(att[:, 0])))
    print("graph seconds %.6f" % (time.perf_counter() - t0), flush=True)
    u = L * n  # top-layer node of token 0
    for v in range(min(args.sinks, n)):
        t0, c0 = time.perf_counter(), time.process_time()
        value = nx.maximum_flow_value(G, u, v, flow_func=nx.algorithms.flow.edmonds_karp)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print("sink %d value %.17g seconds %.6f cpu %.6f" % (v, value, dt, dc), flush=True)


if __name__ == "__main__":
    main()
