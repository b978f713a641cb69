"""train_tiny_vit.py - a tiny ViT image classifier TRAINED on the spot, offline, on a
synthetic task whose answer lives in one region of the image, saved as a Hugging Face model
folder (config, weights, image processor) for examples/vision.sh. A toy: it learns where a
bright object sits, nothing else; its use is a model whose maps over the image can be
checked against a known object, where the hub cannot be reached.

    python examples/train_tiny_vit.py OUT_DIR [--steps 500] [--heldout 24] [--seed 0]
    python examples/train_tiny_vit.py --measure RUN_DIR HELDOUT_DIR   # maps on the object

Images: 64 x 64 RGB, a noisy textured background (a random dark grey level 30..90 per
image, random stripes of amplitude 15, per-pixel Gaussian noise of sd 12) and ONE object,
a square or a disc of 12..20 pixels in a random bright colour (one channel 255), placed wholly inside one quadrant; the label is that quadrant
(0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). ViT of 8 x 8 patches (64 patches +
CLS), 2 layers, 4 heads, 48 dimensions, no dropout; AdamW (lr 2e-3, warm-up then cosine to
0), 32 fresh images a step, fixed seed, 1 CPU thread. Writes OUT_DIR/training.json (steps,
seconds, final loss, held-out accuracy) and OUT_DIR/heldout/ (the held-out images as .npy,
images.jsonl, boxes.json: each image's object box in pixels, [y0, x0, y1, x1) ).

--measure reads RUN_DIR/examples.safetensors (`attnmap analyze`'s per-example maps, one
row per example in the order of images.jsonl, checked by the labels) and prints the
accuracy of the exporter's predictions and, for rollout, grad_rollout, attention_last and
saliency.abs_grad_x_input, the mean over examples of the share of the map's mass (over the
64 patches, CLS left out, negatives as 0) on the patches the object's bounding box touches,
against the mean share of the patches it touches (object_area_share), and how often the
map's largest patch is one of them."""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny_lm import train, training_args  # noqa: E402

SIZE, PATCH = 64, 8


def make_images(n, rng):
    """n images [n,64,64,3] uint8, labels [n] (the object's quadrant), boxes [n,4]."""
    import numpy as np

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    imgs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    labels = rng.integers(0, 4, n)
    boxes = np.empty((n, 4), np.int64)
    half = SIZE // 2
    for i in range(n):
        base = rng.uniform(30, 90)
        ang, freq = rng.uniform(0, math.pi), rng.uniform(0.15, 0.5)
        stripes = 15 * np.sin(freq * (xx * math.cos(ang) + yy * math.sin(ang)))
        img = base + stripes[..., None] + rng.normal(0, 12, (SIZE, SIZE, 3))
        s = int(rng.integers(12, 21))
        qy, qx = divmod(int(labels[i]), 2)
        y0 = qy * half + int(rng.integers(0, half - s + 1))
        x0 = qx * half + int(rng.integers(0, half - s + 1))
        colour = rng.uniform(0, 255, 3)
        colour[rng.integers(0, 3)] = 255  # bright: one channel full
        if rng.random() < 0.5:
            inside = (yy >= y0) & (yy < y0 + s) & (xx >= x0) & (xx < x0 + s)
        else:
            c = (s - 1) / 2.0
            inside = (yy - y0 - c) ** 2 + (xx - x0 - c) ** 2 <= (s / 2.0) ** 2
        img[inside] = colour
        imgs[i] = np.clip(img, 0, 255).astype(np.uint8)
        boxes[i] = (y0, x0, y0 + s, x0 + s)
    return imgs, labels, boxes


def pixels(imgs, torch):
    """The ViTImageProcessor's pixel_values (rescale 1/255, mean 0.5, std 0.5)."""
    x = torch.from_numpy(imgs).float().permute(0, 3, 1, 2) / 255.0
    return (x - 0.5) / 0.5


def box_patches(box):
    """[8,8] bool: the patches the pixel box [y0,x0,y1,x1) touches."""
    import numpy as np

    m = np.zeros((SIZE // PATCH, SIZE // PATCH), bool)
    y0, x0, y1, x1 = (int(v) for v in box)
    m[y0 // PATCH:(y1 - 1) // PATCH + 1, x0 // PATCH:(x1 - 1) // PATCH + 1] = True
    return m


def measure(run, heldout):
    import numpy as np
    from safetensors.numpy import load_file

    t = load_file(os.path.join(run, "examples.safetensors"))
    boxes = json.load(open(os.path.join(heldout, "boxes.json")))
    labels = [json.loads(line)["label"] for line in open(os.path.join(heldout, "images.jsonl"))]
    if list(t["labels"]) != labels:
        raise SystemExit("--measure: the run's examples are not %s's images in order" % heldout)
    masks = np.stack([box_patches(b).ravel() for b in boxes])
    area = masks.mean(1)
    out = {"examples": len(boxes),
           "accuracy": round(float((t["predictions"] == t["labels"]).mean()), 4),
           "object_area_share": round(float(area.mean()), 4)}
    for name in ("rollout", "grad_rollout", "attention_last", "saliency.abs_grad_x_input"):
        if name not in t:
            continue
        m = t[name].astype(np.float64)[:, -masks.shape[1]:]  # the 64 patches, CLS first
        m = np.nan_to_num(np.maximum(m, 0))
        share = (m * masks).sum(1) / m.sum(1)
        top = (m.argmax(1)[:, None] == np.arange(masks.shape[1])) & masks
        out[name] = {"mass_on_object": round(float(share.mean()), 4),
                     "min": round(float(share.min()), 4),
                     "ratio_to_area": round(float(share.mean() / area.mean()), 2),
                     "top_patch_on_object": round(float(top.any(1).mean()), 4)}
    print(json.dumps(out, indent=1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--measure", nargs=2, metavar=("RUN", "HELDOUT"))
    ap.add_argument("--heldout", type=int, default=24)
    training_args(ap, steps=500, hidden=48, batch=32, lr=2e-3)
    a = ap.parse_args(argv)
    if a.measure:
        return measure(*a.measure)
    if not a.out:
        ap.error("OUT_DIR or --measure")

    import numpy as np
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    cfg = ViTConfig(image_size=SIZE, patch_size=PATCH, num_channels=3, hidden_size=a.hidden,
                    num_hidden_layers=a.layers, num_attention_heads=a.heads,
                    intermediate_size=2 * a.hidden, num_labels=4,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                    id2label={0: "top-left", 1: "top-right", 2: "bottom-left",
                              3: "bottom-right"},
                    label2id={"top-left": 0, "top-right": 1, "bottom-left": 2,
                              "bottom-right": 3},
                    architectures=["ViTForImageClassification"])
    model = ViTForImageClassification(cfg)

    def loss_of_step():
        imgs, labels, _ = make_images(a.batch, rng)
        return model(pixel_values=pixels(imgs, torch), labels=torch.from_numpy(labels)).loss

    figures = train(model, a, loss_of_step, torch)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(a.out)

    # held-out images: a generator of their own (seed + 1000), never seen in training
    imgs, labels, boxes = make_images(a.heldout, np.random.default_rng(a.seed + 1000))
    with torch.no_grad():
        pred = model(pixel_values=pixels(imgs, torch)).logits.argmax(-1).numpy()
    acc = float((pred == labels).mean())
    held = os.path.join(a.out, "heldout")
    os.makedirs(held, exist_ok=True)
    with open(os.path.join(held, "images.jsonl"), "w") as f:
        for i in range(a.heldout):
            np.save(os.path.join(held, "img%d.npy" % i), imgs[i])
            f.write(json.dumps({"id": i, "image": "img%d.npy" % i,
                                "label": int(labels[i])}) + "\n")
    with open(os.path.join(held, "boxes.json"), "w") as f:
        json.dump(boxes.tolist(), f)
    info = {"task": "quadrant of one bright square or disc on a noisy 64x64 background",
            "steps": a.steps, "seed": a.seed, "layers": a.layers, "heads": a.heads,
            "hidden": a.hidden, "batch": a.batch, "lr": a.lr, **figures,
            "heldout": a.heldout, "heldout_accuracy": round(acc, 4)}
    with open(os.path.join(a.out, "training.json"), "w") as f:
        json.dump(info, f, indent=1)
    print("trained %d steps in %.1f s: loss %s -> %s; held-out accuracy %.3f (%d images)" % (
        a.steps, info["seconds"], info["first_loss"], info["final_loss"], acc, a.heldout))


if __name__ == "__main__":
    main()
