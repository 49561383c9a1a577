"""`keras-ann presets`: the released reference models."""


def add_parser(subparsers):
    presets = subparsers.add_parser("presets", help="list the released reference models")
    presets.set_defaults(func=run)


def run(args):
    from keras_ann.presets import PRESETS

    print(f"{'name':42} {'crop':>9} {'iters':>7} {'mIoU':>6} {'ms+flip':>7} test")
    for p in PRESETS.values():
        crop = f"{p.crop_size[0]}x{p.crop_size[1]}"
        print(f"{p.name:42} {crop:>9} {p.iterations:>7} {p.miou:6.2f} {p.miou_ms_flip:7.2f} {p.test_mode}")
