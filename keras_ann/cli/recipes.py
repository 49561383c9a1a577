"""`keras-ann recipes`: the training recipes."""


def add_parser(subparsers):
    recipes = subparsers.add_parser("recipes", help="list the training recipes (`keras-ann train RECIPE`)")
    recipes.set_defaults(func=run)


def run(args):
    from keras_ann.recipes import RECIPES

    print(f"{'name':42} {'data':19} {'backbone':13} {'init':8} {'crop':>9} {'batch':>5} {'iters':>6} {'lr':>5} test")
    for r in RECIPES.values():
        crop = f"{r.crop_size[0]}x{r.crop_size[1]}"
        init = "ImageNet" if r.backbone_init else "scratch"
        test = f"{r.test_mode} " + ("x".join(map(str, r.test_scale)) if r.test_scale else "native size")
        print(
            f"{r.name:42} {r.data:19} {r.backbone:13} {init:8} {crop:>9} {r.total_batch:>5} {r.iterations:>6} "
            f"{r.lr:>5g} {test}"
        )
