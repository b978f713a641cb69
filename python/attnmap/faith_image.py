"""attnmap.faith_image - the image_baseline mode of attnmap-faithfulness (docs/faithfulness.md):
a removed token of a ViT is its patch set to the baseline value 0 in the model's normalised
pixel space (the processor's mean colour; the baseline of the exporter's integrated
gradients). The pixels come from the dataset's `images` [B,H,W,3] U8 (the picture the model
saw, as the exporter writes it) normalised again with the processor's own settings, and the
patch of a token from `attnmap.grid` ("RxC+P": P prefix tokens, then R x C patches row-major).
"""
import re

import numpy as np


def parse_grid(text, where):
    m = re.fullmatch(r"(\d+)x(\d+)(?:\+(\d+))?", text or "")
    if not m:
        raise SystemExit("attnmap-faithfulness: --mode image_baseline: %s has no attnmap.grid "
                         "metadata (RxC+P) saying which patch each token is" % where)
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def normalise(image, proc, torch):
    """[3,H,W] float32 pixel_values of one U8 [H,W,3] image, as the processor scales them."""
    x = image.astype(np.float64)
    if getattr(proc, "do_rescale", True):
        x = x * getattr(proc, "rescale_factor", 1 / 255)
    if getattr(proc, "do_normalize", True):
        x = (x - np.asarray(proc.image_mean, np.float64)) / np.asarray(proc.image_std, np.float64)
    return torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32))


def forward_images(model, proc, rows, grid, patch, device, torch):
    """forward(ids, mask, owners) of faith_inputs for rows (read_data's, with "image" and
    "pos"): ids hold the token index or -1 for a removed patch."""
    _, cols, prefix = grid

    def forward(ids, mask, owners):
        px = torch.stack([normalise(rows[o]["image"], proc, torch) for o in owners.tolist()])
        gone = (ids == -1).cpu().numpy()
        for b, o in enumerate(owners.tolist()):
            for j in np.flatnonzero(gone[b]):
                r, c = divmod(int(rows[o]["pos"][j]) - prefix, cols)
                px[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0
        return model(pixel_values=px.to(device)).logits.float()

    return forward
