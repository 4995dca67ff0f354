#!/usr/bin/python3
"""Dev-time tool: writes augment_reference.safetensors, the expected outputs of torchvision 0.14 (PIL 9.4)
transforms on fixed inputs with fixed parameters, for tests/data/augment_test.cpp.

Run with Debian's interpreter after `apt-get install python3-torchvision` (not needed to build or test):
    /usr/bin/python3 tests/data/reference/generate.py
Each case <name> stores <name>.out (the expected output; U8 [H, W, C] or F32 [C, H, W]) and <name>.params
(F64, the parameters, read by the test). The input images are stored too (src, src_big).
The file is written with a small hand-written safetensors writer (no dependency beyond numpy).
"""
import json
import os
import struct

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps
from torchvision.transforms import InterpolationMode

assert torchvision.__version__.startswith("0.14"), torchvision.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
tensors = {}


def put(name, arr):
    tensors[name] = np.ascontiguousarray(arr)


def case(name, params, out):
    put(name + ".params", np.asarray(params, dtype=np.float64).reshape(-1))
    if isinstance(out, Image.Image):
        out = np.asarray(out, dtype=np.uint8)
        if out.ndim == 2:
            out = out[:, :, None]
    elif isinstance(out, torch.Tensor):
        out = out.numpy().astype(np.float32)
    put(name + ".out", out)


def make_image(h, w, seed):
    """Smooth colour gradients plus noise and a few hard edges: exercises every code path."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * x / max(w - 1, 1)
    b = 255 * (y / max(h - 1, 1)) ** 2
    img = np.stack([r, g, b], axis=-1) + rs.normal(0, 18, (h, w, 3))
    img[h // 3: h // 2, w // 4: w // 2] = [250, 10, 40]
    img[h // 2:, : w // 5] = rs.randint(0, 256, (h - h // 2, w // 5, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


src_np = make_image(32, 40, 0)
big_np = make_image(120, 150, 1)
put("src", src_np)
put("src_big", big_np)
src = Image.fromarray(src_np, "RGB")
big = Image.fromarray(big_np, "RGB")

modes = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}
# (top, left, height, width, out_h, out_w): upscaling, downscaling, mixed, identity-sized, full image.
crops = [(3, 5, 20, 30, 32, 32), (0, 0, 32, 40, 32, 32), (2, 4, 28, 12, 32, 32), (0, 8, 32, 32, 32, 32),
         (11, 3, 9, 31, 17, 23), (0, 0, 32, 40, 64, 64), (1, 2, 13, 17, 57, 61)]
for mname, mode in modes.items():
    for k, (t, l, h, w, oh, ow) in enumerate(crops):
        case(f"crop_{mname}_{k}", [t, l, h, w, oh, ow, 0], F.resized_crop(src, t, l, h, w, [oh, ow], mode))
    for k, (t, l, h, w, oh, ow) in enumerate([(10, 20, 100, 120, 32, 32), (0, 0, 120, 150, 40, 48), (5, 7, 110, 90, 23, 19)]):
        case(f"crop_{mname}_big_{k}", [t, l, h, w, oh, ow, 1], F.resized_crop(big, t, l, h, w, [oh, ow], mode))

for k, f in enumerate([0.0, 0.6, 0.87, 1.0, 1.23, 1.4]):
    case(f"brightness_{k}", [f], F.adjust_brightness(src, f))
    case(f"contrast_{k}", [f], F.adjust_contrast(src, f))
for k, f in enumerate([0.0, 0.8, 0.93, 1.17, 1.2, 2.5]):
    case(f"saturation_{k}", [f], F.adjust_saturation(src, f))
for k, f in enumerate([-0.5, -0.1, -0.0371, 0.0, 0.002, 0.05, 0.1, 0.5]):
    case(f"hue_{k}", [f], F.adjust_hue(src, f))
case("grayscale", [], F.rgb_to_grayscale(src, num_output_channels=3))
case("solarize", [128], ImageOps.solarize(src, 128))
for k, r in enumerate([0.1, 0.37, 0.5, 1.0, 1.66, 2.0, 7.5]):
    case(f"blur_{k}", [r], src.filter(ImageFilter.GaussianBlur(radius=r)))
case("hflip", [], F.hflip(src))
# Resize(shorter) + CenterCrop, as the evaluation transforms.
for k, (size, crop, mname) in enumerate([(24, 20, "bilinear"), (100, 96, "bilinear"), (45, 45, "bicubic"), (30, 33, "bilinear")]):
    img = F.center_crop(F.resize(src, size, modes[mname]), [crop, crop])
    case(f"resize_center_{k}", [size, crop, 1 if mname == "bicubic" else 0], img)
mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
case("normalize", list(mean) + list(std), F.normalize(F.to_tensor(src), mean, std))

# ColorJitter with fixed factors and order (ColorJitter.forward's loop).
def jitter(img, order, b, c, s, h):
    for fn in order:
        if fn == 0:
            img = F.adjust_brightness(img, b)
        elif fn == 1:
            img = F.adjust_contrast(img, c)
        elif fn == 2:
            img = F.adjust_saturation(img, s)
        else:
            img = F.adjust_hue(img, h)
    return img

jitters = [([0, 1, 2, 3], 0.61, 1.37, 0.83, 0.07), ([3, 2, 1, 0], 1.39, 0.64, 1.19, -0.09), ([2, 0, 3, 1], 1.05, 0.95, 1.01, 0.003),
           ([1, 3, 0, 2], 0.7, 1.2, 0.8, -0.1)]
for k, (order, b, c, s, h) in enumerate(jitters):
    case(f"jitter_{k}", order + [b, c, s, h], jitter(src, order, b, c, s, h))

# The whole CIFAR view pipeline (crop, jitter, grayscale, blur, solarize, flip, normalize) with fixed decisions.
# params: top left height width | jitter order b c s h | gray blur radius solarize flip
pipelines = [
    [3, 5, 25, 33, 1, 0, 1, 2, 3, 0.61, 1.37, 0.83, 0.07, 0, 0, 0.0, 0, 1],
    [0, 0, 32, 40, 1, 3, 1, 0, 2, 1.2, 0.7, 1.1, -0.05, 1, 1, 1.3, 1, 0],
    [10, 12, 17, 21, 0, 0, 1, 2, 3, 1.0, 1.0, 1.0, 0.0, 0, 1, 0.4, 0, 1],
]
for k, p in enumerate(pipelines):
    t, l, h, w, jit = p[:5]
    order, (b, c, s, hu) = p[5:9], p[9:13]
    gray, blur, radius, sol, flip = p[13:18]
    img = F.resized_crop(src, t, l, h, w, [32, 32], InterpolationMode.BICUBIC)
    if jit:
        img = jitter(img, [int(o) for o in order], b, c, s, hu)
    if gray:
        img = F.rgb_to_grayscale(img, num_output_channels=3)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(radius=radius))
    if sol:
        img = ImageOps.solarize(img, 128)
    if flip:
        img = F.hflip(img)
    case(f"pipeline_{k}", p, F.normalize(F.to_tensor(img), mean, std))


def write_safetensors(path, tensors):
    dt = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = tensors[name]
        b = a.tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


out = os.path.join(HERE, "augment_reference.safetensors")
write_safetensors(out, tensors)
print(f"wrote {len(tensors)} tensors to {out} ({os.path.getsize(out)} bytes)")
