"""attnmap.hf_data - the evaluation data of the exporter and of live runs: records read from
a text file, a JSONL file or a `datasets` split, their integer labels, images, and the order
in which they are grouped into shards or batches."""
import json
import os

import numpy as np


def load_records(src, text_field="text", label_field="label", id_field="id",
                 image_field="image", split_field="split", limit=0, what="attnmap-export",
                 output_field="output"):
    """[{text|image, label, id, split, output}] from a text file, a JSONL file or a datasets
    split (output: the output text of an encoder-decoder model's teacher forcing)."""
    recs = []
    if src.startswith("hf:"):
        try:
            import datasets
        except ImportError:
            raise SystemExit("%s: --data %s needs the `datasets` package, which is "
                             "not installed: pip install datasets (or give a .txt or .jsonl "
                             "file)" % (what, src)) from None
        parts = src[3:].split(":")
        name, split = parts[0], parts[-1]
        config = parts[1] if len(parts) == 3 else None
        for i, row in enumerate(datasets.load_dataset(name, config, split=split)):
            recs.append({"text": row.get(text_field), "image": row.get(image_field),
                         "label": row.get(label_field), "id": row.get(id_field, i),
                         "output": row.get(output_field)})
    elif src.endswith(".jsonl"):
        with open(src, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                row = json.loads(line)
                image = row.get(image_field)
                if isinstance(image, str) and not os.path.isabs(image):
                    image = os.path.join(os.path.dirname(os.path.abspath(src)), image)
                recs.append({"text": row.get(text_field), "image": image,
                             "label": row.get(label_field),
                             "id": row.get(id_field, i),
                             "split": row.get(split_field),
                             "output": row.get(output_field)})
    else:
        with open(src, encoding="utf-8") as f:
            recs = [{"text": t.rstrip("\n"), "id": i} for i, t in enumerate(f) if t.strip()]
    if limit:
        recs = recs[:limit]
    if not recs:
        raise SystemExit("%s: %s holds no examples" % (what, src))
    return recs


def as_records(data):
    """Records from what a user hands to attnmap.hf.analyze_model: dicts (text or image,
    optional label and id) are kept, strings become texts and anything else an image; ids
    default to the position."""
    recs = []
    for i, x in enumerate(data):
        if isinstance(x, dict):
            r = dict(x)
        elif isinstance(x, str):
            r = {"text": x}
        else:
            r = {"image": x}
        r.setdefault("id", i)
        recs.append(r)
    if not recs:
        raise SystemExit("attnmap: the data holds no examples")
    return recs


def label_ids(recs, config):
    """Integer labels (None when the data has none) and the label names."""
    raw = [r.get("label") for r in recs]
    if any(v is None for v in raw):
        return None, None
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw):
        id2label = getattr(config, "id2label", None) or {}
        n = max(max(raw) + 1, len(id2label))
        return [int(v) for v in raw], [str(id2label.get(i, i)) for i in range(n)]
    label2id = {str(k).lower(): v for k, v in (getattr(config, "label2id", None) or {}).items()}
    names = sorted({str(v) for v in raw})
    if label2id and all(str(v).lower() in label2id for v in raw):
        n = max(label2id.values()) + 1
        inv = {v: k for k, v in label2id.items()}
        return [label2id[str(v).lower()] for v in raw], [inv.get(i, str(i)) for i in range(n)]
    return [names.index(str(v)) for v in raw], names


def load_image(x):
    from PIL import Image

    if isinstance(x, str):
        if x.endswith(".npy"):
            return Image.fromarray(np.load(x).astype(np.uint8))
        return Image.open(x).convert("RGB")
    return x.convert("RGB") if hasattr(x, "convert") else Image.fromarray(np.asarray(x))


def groups(lengths, k, sort_by_length):
    """Record indices in groups of k (shards or batches), sorted by length first when
    asked (stably: equal lengths keep their order)."""
    order = list(range(len(lengths)))
    if sort_by_length:
        order.sort(key=lambda i: lengths[i])
    k = max(1, k)
    return [order[i:i + k] for i in range(0, len(order), k)]
