#!/usr/bin/python3
"""gpu_limits.py - the limits of the first CUDA device, for bench/run.sh's GPU table:
device-to-device copy bandwidth, pinned host-to-device bandwidth and the SGEMM rate
(torch.mm of two 8192 x 8192 float32 matrices, TF32 off), each the best of 5 timed with
CUDA events after a warm-up. Prints one JSON line; {"cuda": false} without a device.

Run: /usr/bin/python3 bench/peers/gpu_limits.py   (a CUDA build of torch)
"""
import json

import torch


def timed(fn, repeats=5):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(stop) / 1e3)
    return best


def main():
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False}))
        return
    dev = torch.device("cuda:0")
    nbytes = 1 << 30
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    d2d = timed(lambda: dst.copy_(src))
    host = torch.empty(nbytes // 4, dtype=torch.float32).pin_memory()
    h2d = timed(lambda: dst.copy_(host, non_blocking=True))
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    mm = timed(lambda: torch.mm(a, b))
    print(json.dumps({"cuda": True, "device": torch.cuda.get_device_name(dev),
                      "d2d_copy_gbs": 2 * nbytes / d2d / 1e9,
                      "h2d_pinned_gbs": nbytes / h2d / 1e9,
                      "sgemm_tflops": 2 * n ** 3 / mm / 1e12}))


if __name__ == "__main__":
    main()
