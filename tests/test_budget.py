"""Training within a time budget (`train(time_budget=...)`,
`keras-ann train --time-budget`): the iteration count is planned from
timings of the run itself, the timed steps leave no trace, and a resumed
run keeps its plan."""

import json

import numpy as np
import pytest

from testing_utils import scene_folder
from keras_ann import budget, training

RUN = dict(crop_size=(32, 32), scale=(48, 48), batch_size=2, seed=0, eval_steps=1, verbose=0)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2.5h", 9000)])
def test_durations_read_with_their_units(text, seconds):
    assert budget.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "abc", "0m", "15 minutes", "-5m"])
def test_a_duration_without_a_unit_or_not_positive_is_refused_with_examples(text):
    with pytest.raises(ValueError, match=r"e\.g\. 90s, 15m, 1h|longer than 0"):
        budget.parse_duration(text)


def test_the_plan_fits_steps_evaluations_and_checkpoints_in_the_time_left():
    plan = budget.plan_iterations(left=3600, step=1.2, evaluation=40, checkpoint=2, first_step=20, first_evaluation=5)
    evaluations = plan.iterations // plan.eval_interval
    assert plan.iterations % plan.eval_interval == 0 and 1 <= evaluations <= budget.MAX_EVALUATIONS
    spent = 20 + 5 + plan.iterations * 1.2 + evaluations * (40 + 3 * 2)
    assert spent <= 3600 * (1 - budget.MARGIN) and spent + 1.2 * evaluations > 3600 * (1 - budget.MARGIN) - 1.2


def test_a_budget_too_short_for_ten_iterations_is_refused_naming_the_flags():
    with pytest.raises(ValueError, match=r"fewer than 10 iterations.*--time-budget.*--crop-size or --batch-size"):
        budget.plan_iterations(left=30, step=5, evaluation=10, checkpoint=1)


def test_a_budgeted_run_trains_exactly_as_its_planned_iteration_count(tmp_path, monkeypatch):
    root = scene_folder(tmp_path / "scenes", count=4)
    # The plan depends on this machine's speed: fixed here, the timing
    # itself (steps, evaluations, a save) runs for real.
    measured = []
    measure = budget.measure
    monkeypatch.setattr(budget, "measure", lambda *a, **k: measured.append(measure(*a, **k)) or measured[-1])
    monkeypatch.setattr(budget, "plan_iterations", lambda left, **t: budget.BudgetPlan(4, 2, t["step"], 1, 1, left))
    budgeted, _ = training.train("ann_r18_d8_camvid_cpu", root, str(tmp_path / "budget"), time_budget="10m", **RUN)
    assert measured and measured[0]["step"] > 0 and measured[0]["evaluation"] > 0
    counted, _ = training.train(
        "ann_r18_d8_camvid_cpu", root, str(tmp_path / "counted"), iterations=4, eval_interval=2, **RUN
    )
    assert int(budgeted.optimizer.iterations.numpy()) == 4
    for a, b in zip(budgeted.get_weights(), counted.get_weights()):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "budget" / "recipe.json") as f:
        saved = json.load(f)
    assert (saved["time_budget"], saved["iterations"], saved["val_interval"]) == (600, 4, 2)

    # The same command again resumes with the saved plan: nothing is timed.
    monkeypatch.setattr(budget, "measure", lambda *a, **k: pytest.fail("a resumed run planned again"))
    model, _ = training.train("ann_r18_d8_camvid_cpu", root, str(tmp_path / "budget"), time_budget="10m", **RUN)
    assert int(model.optimizer.iterations.numpy()) == 4


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--time-budget", "30"], "--time-budget: a time budget is a duration with units, e.g. 90s, 15m, 1h or 1h30m"),
        (["--time-budget", "15m", "--iterations", "100"], "give it or --iterations/--eval-interval, not both"),
    ],
)
def test_time_budget_mistakes_are_one_line_errors(flags, message, capsys):
    from keras_ann import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["train", "ann_r18_d8_camvid_cpu", "--print-config", *flags])
    assert message in str(info.value.code) + capsys.readouterr().err


def test_the_time_budget_is_a_recipe_key_that_an_iteration_count_replaces():
    from keras_ann import cli, recipes

    one_hour = recipes.get_recipe("ann_r18_d16_camvid_cpu_1h")
    assert one_hour.time_budget == 3300  # fits the hour on any CPU, with or without bfloat16
    assert one_hour.replace(iterations=100).time_budget is None
    assert recipes.get_recipe("ann_r18_d8_camvid_cpu").replace(time_budget="15m").time_budget == 900
    with pytest.raises(ValueError, match="`time_budget` must be seconds or a duration such as 30m, or null"):
        one_hour.replace(time_budget=-5)
    with pytest.raises(ValueError, match="give it or `iterations`"):
        training.train(one_hour, "unused", "unused", time_budget=60, iterations=10)


def test_print_config_shows_the_time_budget(capsys):
    from keras_ann import cli

    cli.main(["train", "ann_r18_d8_camvid_cpu", "--print-config", "--time-budget", "1h30m"])
    assert json.loads(capsys.readouterr().out)["time_budget"] == 5400
    cli.main(["train", "ann_r18_d16_camvid_cpu_1h", "--print-config", "--iterations", "50", "--eval-interval", "50"])
    config = json.loads(capsys.readouterr().out)
    assert config["time_budget"] is None and config["iterations"] == 50
