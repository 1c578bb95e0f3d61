"""Share links: settings survive the round trip through the URL; hostile links are refused piece by piece."""
from urllib.parse import parse_qs, urlencode

import pytest

from resnet_viz.config import PRESETS, ModelSpec, TrainSpec, replace
from resnet_viz.share import from_params, model_text, to_params


def through_url(params: dict) -> dict:
    """What the browser hands back: the params encoded into a query string and parsed again."""
    return parse_qs(urlencode(params, doseq=True), keep_blank_values=True)


def test_a_preset_alone_is_a_short_link():
    assert to_params("degradation", PRESETS["degradation"].train, PRESETS["degradation"].models) == \
        {"preset": "degradation"}


def test_settings_survive_the_round_trip():
    models = (ModelSpec(depth=56, skip=False), ModelSpec(depth=56, beta=0.5, learn_alpha=True, scale="channel"),
              ModelSpec(depth=20, csp=0.5, csp_fusion="first", name="my CSP, net"))
    train = replace(PRESETS["rezero"].train, steps=250, lr=0.003, lr_decay=0.1, seed=7)
    params = to_params("rezero", train, models, lang="zh", classroom=True, dataset="fashion-mnist")
    shared = from_params(through_url(params), datasets=("mnist-5k", "fashion-mnist"))
    assert not shared.problems
    assert (shared.preset, shared.train, shared.models) == ("rezero", train, models)
    assert (shared.lang, shared.classroom, shared.dataset) == ("zh", True, "fashion-mnist")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_presets_link_is_short_and_every_family_survives_the_round_trip(preset):
    """Each preset alone is `?preset=NAME`; its models with a setting changed (a family's own: the resnet stem
    and width, VGG's batch norm, a transfer) come back the same from the link."""
    base = PRESETS[preset]
    assert to_params(preset, base.train, base.models) == {"preset": preset}
    changed = {"resnet": {"width": 0.5, "stem": "imagenet", "stem_stride": None}, "vgg": {"batch_norm": False},
               "lenet5": {"name": "LeNet"}, "alexnet": {"transfer": "finetune"}, "cifar": {"batch_norm": False}}
    models = tuple(replace(m, **({"name": ""} | changed[m.family])) for m in base.models)  # "": derived anew
    shared = from_params(through_url(to_params(preset, base.train, models)))
    assert not shared.problems, [p.text("en") for p in shared.problems]
    assert (shared.models or base.models) == models and shared.train is None  # None: what the preset has


def test_derived_names_stay_out_of_the_link():
    assert model_text(ModelSpec(depth=56, skip=False)) == "depth:56,skip:0"


HOSTILE = {
    "unknown preset": ({"preset": "../../etc/passwd"}, "preset"),
    "depth out of range": ({"model": "depth:1000"}, "model"),
    "depth not a number": ({"model": "depth:abc"}, "model"),
    "unknown model field": ({"model": "depth:20,__class__:x"}, "model"),
    "nan alpha": ({"model": "alpha:nan"}, "model"),
    "infinite beta": ({"model": "beta:1e999"}, "model"),
    "too many models": ({"model": ["depth:20"] * 7}, "model"),
    "duplicate names": ({"model": ["depth:20", "depth:20"]}, "model"),
    "negative lr": ({"lr": "-1"}, "lr"),
    "lr not a number": ({"lr": "fast"}, "lr"),
    "steps float": ({"steps": "1.5"}, "steps"),
    "huge steps": ({"steps": "9" * 40}, "steps"),
    "gamma zero": ({"lr_decay": "0"}, "lr_decay"),
    "bad optimizer": ({"optimizer": "<script>alert(1)</script>"}, "optimizer"),
    "bad device": ({"device": "tpu"}, "device"),
    "bad language": ({"lang": "fr"}, "lang"),
    "bad classroom flag": ({"classroom": "maybe"}, "classroom"),
    "unknown dataset": ({"dataset": "imagenet"}, "dataset"),
    "very long value": ({"lr": "1" * 10_000}, "lr"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_bad_parameter_is_dropped_with_a_message_and_the_rest_applies(case):
    bad, key = HOSTILE[case]
    shared = from_params(through_url({"preset": "rezero", "seed": "3", **bad}) if key != "preset" else
                         through_url({"seed": "3", **bad}))
    assert len(shared.problems) == 1, [p.text("en") for p in shared.problems]
    problem = shared.problems[0]
    assert problem.key == "error.url_param" and problem.params["param"] == key
    assert key in problem.text("en") and "已忽略" in problem.text("zh")
    assert shared.train is not None and shared.train.seed == 3, "the good parameters still apply"
    assert shared.models is None or key != "model"


def test_unknown_parameters_are_ignored_quietly():
    shared = from_params({"utm_source": "mail", "fbclid": "x"})
    assert not shared.problems and shared.train is None and shared.models is None
    assert shared.preset == "degradation"


def test_train_values_are_checked_by_the_spec():
    shared = from_params({"batch_size": "2048", "momentum": "1"})
    assert sorted(p.params["param"] for p in shared.problems) == ["batch_size", "momentum"]
    assert shared.train is None
    assert TrainSpec().batch_size == 64


def test_a_setting_given_twice_names_the_value_that_applies():
    shared = from_params({"steps": ["200", "300"], "lr": ["0.1", "0.1"]})
    assert [p.key for p in shared.problems] == ["error.url_repeated"]  # the same value twice says nothing
    problem = shared.problems[0]
    assert problem.params["param"] == "steps" and "200, 300" in problem.text("en") and "300" in problem.text("zh")
    assert shared.train.steps == 300 and shared.train.lr == 0.1
