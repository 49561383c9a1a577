"""Train a recipe from Python, the same as `keras-ann train`.

    python examples/train.py ann_r18_d8_camvid_cpu path/to/CamVid runs/camvid_cpu   # the SegNet release's CamVid/
    python examples/train.py ann_r50_d8_cityscapes_512x1024_40k data/cityscapes runs/r50 --precision mixed_float16
"""

import argparse

from keras_ann.training import PRECISIONS, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("recipe")
parser.add_argument("data_root")
parser.add_argument("work_dir")
parser.add_argument("--precision", default="auto", choices=("auto",) + PRECISIONS)
parser.add_argument("--iterations", type=int)
args = parser.parse_args()
model, history = train(args.recipe, args.data_root, args.work_dir, precision=args.precision, iterations=args.iterations)
print({key: values[-1] for key, values in history.history.items()})
