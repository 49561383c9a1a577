"""`keras-ann push`: upload a preset directory to the Hugging Face Hub
(`keras_ann.models.preset_directory.push_preset`)."""


def add_parser(subparsers):
    push = subparsers.add_parser("push", help="upload a preset directory to the Hugging Face Hub (hf://OWNER/NAME)")
    push.add_argument("directory", help="a preset directory (model.save_to_preset, convert --preset, evaluate --save-preset)")
    push.add_argument("handle", help="hf://OWNER/NAME: the model repository (created if missing)")
    push.set_defaults(func=run)


def run(args):
    import keras_ann
    from keras_ann.models.preset_directory import push_preset

    print(f"uploaded {args.directory} to {args.handle}: {push_preset(keras_ann.ANNSegmenter, args.directory, args.handle)}")
