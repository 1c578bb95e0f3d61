import math

import pytest

from resnet_viz import config
from resnet_viz.config import (
    PRESETS,
    VALID_DEPTHS,
    ModelSpec,
    TrainSpec,
    check_models,
    spec_dict,
    spec_from_dict,
)
from resnet_viz.i18n import LabError


def test_defaults_are_valid():
    m, t = ModelSpec(), TrainSpec()
    assert (m.depth, m.skip, m.shortcut, m.width, m.batch_norm, m.init, m.stem_stride) == \
        (20, True, "A", 1.0, True, "he", 2)
    assert t.steps >= 1 and 0 < t.lr <= 10 and 0 <= t.momentum < 1 and 0 <= t.warmup_steps <= t.steps


def test_valid_depths_are_6n_plus_2():
    assert VALID_DEPTHS[0] == 8 and VALID_DEPTHS[-1] == 110
    assert all((d - 2) % 6 == 0 for d in VALID_DEPTHS)
    for d in VALID_DEPTHS:
        assert ModelSpec(depth=d).depth == d


def _assert_lab_error(exc_info, key, value):
    err = exc_info.value
    assert isinstance(err, ValueError)
    assert err.key == key
    msg = str(err)
    assert f"got {value}" in msg, msg
    assert msg != key  # a real sentence, not the bare catalogue key


@pytest.mark.parametrize("field,value,key", [
    ("depth", 21, "error.depth"),
    ("depth", 116, "error.depth"),
    ("depth", 2, "error.depth"),
    ("depth", 20.0, "error.depth"),
    ("width", 3, "error.width"),
    ("shortcut", "C", "error.shortcut"),
    ("init", "xavier", "error.init"),
    ("stem_stride", 3, "error.stem_stride"),
])
def test_model_spec_rejects(field, value, key):
    with pytest.raises(LabError) as exc_info:
        ModelSpec(**{field: value})
    _assert_lab_error(exc_info, key, value)


def test_model_spec_rejects_long_name():
    with pytest.raises(LabError) as exc_info:
        ModelSpec(name="x" * 25)
    assert exc_info.value.key == "error.name"
    assert "24" in str(exc_info.value)
    assert ModelSpec(name="x" * 24).name == "x" * 24


@pytest.mark.parametrize("field,value,key", [
    ("lr", 0, "error.lr"),
    ("lr", -0.1, "error.lr"),
    ("lr", 10.5, "error.lr"),
    ("lr", math.nan, "error.lr"),
    ("lr", math.inf, "error.lr"),
    ("batch_size", 0, "error.batch_size"),
    ("batch_size", 1025, "error.batch_size"),
    ("momentum", 1, "error.momentum"),
    ("momentum", -0.5, "error.momentum"),
    ("momentum", math.nan, "error.momentum"),
    ("steps", 0, "error.steps"),
    ("steps", 2.5, "error.steps"),
    ("optimizer", "rmsprop", "error.optimizer"),
    ("weight_decay", 0.5, "error.weight_decay"),
    ("seed", -1, "error.seed"),
    ("eval_every", 0, "error.eval_every"),
    ("eval_size", 5, "error.eval_size"),
    ("lr_decay", 0, "error.lr_decay"),
    ("lr_decay", 1.5, "error.lr_decay"),
    ("lr_decay", math.nan, "error.lr_decay"),
    ("device", "tpu", "error.device"),
])
def test_train_spec_rejects(field, value, key):
    with pytest.raises(LabError) as exc_info:
        TrainSpec(**{field: value})
    _assert_lab_error(exc_info, key, value)


def test_warmup_longer_than_steps_rejected():
    with pytest.raises(LabError) as exc_info:
        TrainSpec(steps=10, warmup_steps=11)
    _assert_lab_error(exc_info, "error.warmup", 11)
    assert TrainSpec(steps=10, warmup_steps=10).warmup_steps == 10


@pytest.mark.parametrize("kw", [dict(lr=10), dict(lr=1e-6), dict(momentum=0), dict(batch_size=1024),
                                dict(steps=1), dict(optimizer="adam"), dict(eval_size=10),
                                dict(lr_decay=1.0), dict(lr_decay=0.01), dict(device="cpu")])
def test_train_spec_accepts_boundaries(kw):
    spec = TrainSpec(**kw)
    for k, v in kw.items():
        assert getattr(spec, k) == v


def test_lab_error_translates():
    with pytest.raises(LabError) as exc_info:
        ModelSpec(depth=21)
    err = exc_info.value
    assert "21" in err.text("zh")
    assert err.text("en") == str(err)
    assert err.text("xx") == str(err)  # unknown language falls back to English


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        ModelSpec().depth = 56
    with pytest.raises(AttributeError):
        TrainSpec().lr = 1.0


# ---- check_models --------------------------------------------------------------------------------

def test_check_models_accepts_one_to_six():
    one = (ModelSpec(),)
    assert check_models(one) == one
    six = [ModelSpec(depth=8, name=f"m{i}") for i in range(6)]
    assert check_models(six) == tuple(six)
    assert check_models(iter(six)) == tuple(six)


@pytest.mark.parametrize("n", [0, 7])
def test_check_models_count(n):
    with pytest.raises(LabError) as exc_info:
        check_models([ModelSpec(depth=8, name=f"m{i}") for i in range(n)])
    assert exc_info.value.key == "error.model_count"
    assert f"got {n}" in str(exc_info.value)


def test_check_models_duplicate_names():
    with pytest.raises(LabError) as exc_info:
        check_models([ModelSpec(depth=20), ModelSpec(depth=56), ModelSpec(depth=20, init="default")])
    assert exc_info.value.key == "error.duplicate_names"
    assert "res-20" in str(exc_info.value)
    assert "res-56" not in str(exc_info.value)


def test_check_models_explicit_duplicate_names():
    with pytest.raises(LabError):
        check_models([ModelSpec(depth=8, name="same"), ModelSpec(depth=20, name="same")])


# ---- names and dict round trip ------------------------------------------------------------------

@pytest.mark.parametrize("kw,name", [
    (dict(depth=20, skip=False), "plain-20"),
    (dict(depth=56), "res-56"),
    (dict(depth=20, shortcut="B"), "res-20B"),
    (dict(depth=20, width=0.5), "res-20-w0.5"),
    (dict(depth=56, skip=False, batch_norm=False), "plain-56-nobn"),
    (dict(depth=110, width=2.0), "res-110-w2"),
])
def test_default_names(kw, name):
    assert ModelSpec(**kw).name == name


def test_explicit_name_kept():
    assert ModelSpec(depth=56, name="mine").name == "mine"


def test_spec_from_dict_ignores_unknown_keys():
    spec = spec_from_dict(ModelSpec, {"depth": 56, "skip": False, "colour": "red", "bogus": 1})
    assert spec == ModelSpec(depth=56, skip=False)
    assert spec.name == "plain-56"
    train = spec_from_dict(TrainSpec, {"lr": 0.1, "steps": 7, "extra": None})
    assert train == TrainSpec(lr=0.1, steps=7)


def test_spec_from_dict_still_validates():
    with pytest.raises(LabError):
        spec_from_dict(ModelSpec, {"depth": 21, "bogus": 1})


def test_spec_dict_round_trip():
    spec = ModelSpec(depth=56, skip=False, width=0.5)
    assert spec_from_dict(ModelSpec, spec_dict(spec)) == spec
    train = TrainSpec(lr=0.2, steps=40, warmup_steps=5)
    assert spec_from_dict(TrainSpec, spec_dict(train)) == train


def test_presets_are_valid():
    assert config.DEFAULT_PRESET in PRESETS
    for preset in PRESETS.values():
        assert check_models(preset.models) == preset.models
    names = [m.name for m in PRESETS["degradation"].models]
    assert names == ["plain-20", "res-20", "plain-56", "res-56"]


def test_a_loss_lesson_shows_when_the_worse_models_window_mean_is_factor_times_the_better_ones():
    lesson = config.Lesson("loss", ("plain-56",), ("plain-20", "res-56"), factor=2.0)
    train = TrainSpec()
    n = config.LESSON_WINDOW
    losses = {"plain-56": [2.0] * n, "plain-20": [1.0] * n, "res-56": [0.5] * n}
    assert lesson.shown(losses, train)  # 2.0 >= 2 x max(1.0, 0.5)
    assert not lesson.shown({k: v[:n - 1] for k, v in losses.items()}, train)  # not a whole window yet
    assert not lesson.shown(losses | {"plain-20": [1.01] * n}, train)
    # The window is the last LESSON_WINDOW steps: an early gap that closed again does not count.
    closing = {"plain-56": [2.0] * n + [1.0] * n, "plain-20": [1.0] * 2 * n, "res-56": [0.5] * 2 * n}
    assert lesson.step(closing, train) == n and not lesson.shown(closing, train)
    assert lesson.step({"plain-56": [1.0] * n, "plain-20": [1.0] * n, "res-56": [1.0] * n}, train) == -1
    nan = losses | {"plain-56": [float("nan")] * n}  # a diverged model shows no lesson
    assert not lesson.shown(nan, train)


def test_evaluation_and_first_step_lessons_and_bad_lessons():
    train = TrainSpec(steps=50, eval_every=30)
    assert config.Lesson("evaluation").step({"a": [1.0] * 50}, train) == 30
    assert config.Lesson("evaluation").step({"a": [1.0] * 8}, TrainSpec(steps=8, eval_every=30)) == 8
    assert config.Lesson("first_step").step({"a": [1.0] * 5}, train) == 1
    with pytest.raises(ValueError, match="worse and better"):
        config.Lesson("loss", ("a",))
    with pytest.raises(ValueError, match="one of"):
        config.Lesson("accuracy")
    with pytest.raises(ValueError, match="does not have"):
        config.Preset("preset.x", (ModelSpec(depth=20),), lesson=config.Lesson("loss", ("plain-20",), ("res-20",)))


def test_every_preset_has_a_lesson_that_names_its_own_models():
    for name, preset in PRESETS.items():
        names = {m.name for m in preset.models}
        assert set(preset.lesson.worse + preset.lesson.better) <= names, name
    assert PRESETS["degradation"].lesson.on == "loss" and PRESETS["bottleneck"].lesson.on == "evaluation"
