"""The recipe key `loss` (mmseg's `loss_decode` list) and `keras-ann train
--loss`: the cross-entropy by default, flat JSON, used by the recipe's
compile."""

import json

import pytest

import keras_ann
from keras_ann import cli, recipes
from keras_ann.losses import DiceLoss, FocalLoss, SegmentationCrossEntropy, SumOfLosses
from keras_ann.training import compile_for_recipe

WEIGHTED = "ann_r18_d16_camvid_cpu_1h"  # a recipe with class weights
LOSSES = [{"type": "CrossEntropyLoss", "loss_weight": 1.0}, {"type": "DiceLoss", "loss_weight": 3.0}]


def _tiny_model(num_classes=11):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=num_classes, head_channels=16, project_channels=8, auxiliary_channels=8
    )


def test_every_recipe_keeps_the_cross_entropy_by_default():
    assert all(recipes.get_recipe(name).loss is None for name in recipes.RECIPES)
    recipe = recipes.get_recipe(WEIGHTED)
    model = compile_for_recipe(_tiny_model(), recipe)
    assert type(model.loss) is SegmentationCrossEntropy
    assert model.loss.class_weight == list(recipe.class_weight)


def test_the_loss_key_round_trips_as_flat_json():
    recipe = recipes.get_recipe("ann_r18_d8_camvid_cpu").replace(loss=LOSSES)
    config = json.loads(json.dumps(recipe.to_config()))
    assert config["loss"] == LOSSES
    assert recipes.Recipe.from_config(config) == recipe
    # --set loss=[...] is the same key, parsed as JSON.
    assert recipes.apply_settings("ann_r18_d8_camvid_cpu", ["loss=" + json.dumps(LOSSES)]) == recipe
    assert recipes.apply_settings(recipe, ["loss=null"]).loss is None


@pytest.mark.parametrize(
    "loss, message",
    [
        ([{"type": "BoundaryLoss"}], "Unknown loss type 'BoundaryLoss'"),
        ([{"type": "LovaszLoss", "reduction": "mean"}], "reduction='mean' needs per_image=True"),
        ([], "`loss` must be a list of loss configs"),
        ([{"loss_weight": 1.0}], "a dict with a 'type'"),
    ],
)
def test_a_bad_loss_key_is_refused_naming_the_recipe(loss, message):
    with pytest.raises(ValueError, match=f"Recipe 'ann_r18_d8_camvid_cpu': .*{message}"):
        recipes.get_recipe("ann_r18_d8_camvid_cpu").replace(loss=loss)


def test_compile_for_recipe_sums_the_recipe_losses_with_its_class_weight():
    recipe = recipes.get_recipe(WEIGHTED).replace(
        loss=LOSSES + [{"type": "FocalLoss", "gamma": 1.5}]
    )
    model = compile_for_recipe(_tiny_model(), recipe)
    assert isinstance(model.loss, SumOfLosses)
    cross_entropy, dice, focal = model.loss.losses
    assert type(cross_entropy) is SegmentationCrossEntropy and cross_entropy.class_weight == list(recipe.class_weight)
    assert isinstance(dice, DiceLoss) and dice.loss_weight == 3.0 and dice.ignore_index == model.ignore_index
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5 and focal.class_weight == list(recipe.class_weight)


def test_train_loss_flag_sets_the_recipe_loss(capsys):
    cli.main(["train", "ann_r18_d8_camvid_cpu", "--print-config", "--loss", "CrossEntropy:1,dice:3"])
    assert json.loads(capsys.readouterr().out)["loss"] == LOSSES
    cli.main(["train", "ann_r18_d8_camvid_cpu", "--print-config", "--loss", "OHEM", "--set", "loss=null"])
    assert json.loads(capsys.readouterr().out)["loss"] is None  # --set comes last


@pytest.mark.parametrize(
    "value, message",
    [
        ("boundary", "--loss: unknown loss 'boundary' in 'boundary'; the names are CrossEntropy, Dice"),
        ("dice:heavy", "--loss: the weight of 'dice' must be a number, got 'heavy'"),
    ],
)
def test_train_loss_flag_refuses_unknown_names_and_weights(capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "ann_r18_d8_camvid_cpu", "--print-config", "--loss", value])
    assert message in str(exit_.value.code)


def test_a_camvid_model_fine_tunes_with_focal_and_dice_losses_from_the_command_line(tmp_path):
    import io
    import contextlib
    import math

    from testing_utils import camvid_subset

    root = camvid_subset(tmp_path, 4)
    start = str(tmp_path / "start.keras")
    _tiny_model().save(start)
    work = str(tmp_path / "fine_tuned")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main([
            "train", WEIGHTED, "--data-root", root, "--work-dir", work, "--from-preset", start,
            "--loss", "Focal:1,Dice:0.5", "--iterations", "2", "--eval-interval", "2", "--batch-size", "2",
            "--crop-size", "64", "64", "--scale", "120", "90", "--eval-steps", "1",
        ])  # fmt: skip
    assert status in (0, None), out.getvalue()
    assert f"fine-tuning from {start}" in out.getvalue()
    with open(f"{work}/recipe.json") as f:
        saved = json.load(f)
    assert saved["loss"] == [{"type": "FocalLoss", "loss_weight": 1.0}, {"type": "DiceLoss", "loss_weight": 0.5}]
    assert saved["load_from"] == start
    with open(f"{work}/log.jsonl") as f:
        last = [json.loads(line) for line in f][-1]
    assert last["iteration"] == 2 and math.isfinite(last["decode_loss"]) and last["decode_loss"] > 0
    assert "mIoU" in out.getvalue()
