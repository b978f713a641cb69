#!/usr/bin/env python3
"""long_bytes.py - bytes per example of the two input forms (docs/design.md §2,
docs/long-context.md), computed from the shapes, in F16 (2 bytes a value):
  matrix form  attentions.{l} [H,T,T] (+ attention_grads.{l} [H,T,T] with gradients)
  long form    queries.{l} [H,T,d], keys.{l} and values.{l} [Hkv,T,d]
               (+ attention_output_grads.{l} [H,T,d] with gradients)
for BERT-base (12 layers, 12 heads, d 64, T 512) and the Llama-3-8B shape (32 layers, 32
query heads, 8 KV heads, d 128) at 4k, 8k and 32k tokens. Masks and token ids (8 T bytes
or so) are left out: the same in both forms.
  usage: python3 bench/long_bytes.py   (prints a markdown table)
"""

SHAPES = [("BERT-base", 12, 12, 12, 64, [512]),
          ("Llama-3-8B shape", 32, 32, 8, 128, [4096, 8192, 32768])]


def human(n):
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def main():
    print("| model | T | matrix form | + gradients | long form | + gradients | "
          "ratio (with gradients) |")
    print("|---|---|---|---|---|---|---|")
    for name, L, H, Hkv, d, tokens in SHAPES:
        for T in tokens:
            matrix = L * H * T * T * 2
            long_ = L * (H + 2 * Hkv) * T * d * 2
            long_g = long_ + L * H * T * d * 2
            print(f"| {name} (L={L}, H={H}, Hkv={Hkv}, d={d}) | {T:,} | {human(matrix)} | "
                  f"{human(2 * matrix)} | {human(long_)} | {human(long_g)} | "
                  f"{2 * matrix / long_g:,.0f} |")


if __name__ == "__main__":
    main()
