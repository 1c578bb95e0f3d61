"""Transfer learning: a net pretrained in the run (on other classes or another dataset) gives its backbone to
the transfer models, which get a new head and train frozen or fine-tuned; and runs on a subset of classes."""
import json
import time

import numpy as np
import pytest
import torch
from speed import hang_s

from resnet_viz import runfile, share
from resnet_viz.config import (
    PRESETS,
    LabError,
    ModelSpec,
    TrainSpec,
    parse_classes,
    pretraining,
    replace,
)
from resnet_viz.data.arrays import digits, tensors
from resnet_viz.i18n import tr
from resnet_viz.models import build_model
from resnet_viz.plots import run as plots
from resnet_viz.training.engine import Job, WorkerQueue
from resnet_viz.training.trainer import Control, build_nets, pretrain

SMALL = TrainSpec(steps=6, eval_every=3, eval_size=100, batch_size=32, classes="5-9", pretrain_steps=8,
                  pretrain_classes="0-4")
MODELS = [ModelSpec(depth=8), ModelSpec(depth=8, transfer="frozen"), ModelSpec(depth=8, transfer="finetune")]


def t(key, **kw):
    return tr("en", key, **kw)


@pytest.mark.parametrize("text, classes", [("5-9", (5, 6, 7, 8, 9)), ("0,2,4", (0, 2, 4)), (" 1-2, 7 ", (1, 2, 7)),
                                           ("", tuple(range(10))), ("3,3,4", (3, 4))])
def test_class_lists(text, classes):
    assert parse_classes(text) == classes
    assert TrainSpec(classes=text).class_list == classes


@pytest.mark.parametrize("kw", [dict(classes="9-5"), dict(classes="3"), dict(classes="a-b"), dict(classes="10"),
                                dict(pretrain_classes="0-4,x"), dict(pretrain_steps=-1),
                                dict(pretrain_steps=10**6), dict(pretrain_dataset="cifar10")])
def test_bad_transfer_settings_say_which(kw):
    with pytest.raises(LabError) as e:
        TrainSpec(**kw)
    text = e.value.text("en")
    assert str(next(iter(kw.values()))) in text or "Pretraining steps" in text, text


def test_transfer_names_and_a_transfer_model_needs_the_pretraining():
    assert [m.name for m in PRESETS["transfer"].models] == ["res-20", "res-20-frozen", "res-20-ft"]
    assert ModelSpec(family="vgg", depth=11, transfer="frozen").name == "vgg-11-frozen"
    with pytest.raises(LabError) as e:
        ModelSpec(depth=20, transfer="partly")
    assert "none, frozen, finetune" in e.value.text("en")
    with pytest.raises(LabError) as e:
        Job(MODELS, replace(SMALL, pretrain_steps=0), queue=WorkerQueue(1))
    assert e.value.key == "error.transfer_needs_pretrain" and "res-8-frozen, res-8-ft" in e.value.text("en")
    # one pretraining per architecture, shared by the models that start from it
    assert pretraining(MODELS) == {ModelSpec(depth=8): [1, 2]}


def test_a_frozen_backbone_trains_only_its_head_and_keeps_its_batch_norm_statistics():
    net = build_model(ModelSpec(family="resnet", depth=18, transfer="frozen"))
    trained = [name for name, p in net.named_parameters() if p.requires_grad]
    assert trained == ["head.2.weight", "head.2.bias"]
    net.train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and net.head.training
    for family in ("lenet5", "alexnet", "vgg", "cifar"):
        frozen = build_model(ModelSpec(family=family, transfer="frozen"))
        assert [p for p in frozen.parameters() if p.requires_grad] == list(frozen.head_layer().parameters())


@pytest.fixture(scope="module")
def run():
    job = Job(MODELS, SMALL, queue=WorkerQueue(1))
    snap = job.run_blocking()
    assert snap.state == "done", snap.error
    return job, snap


def test_the_transfer_models_start_from_the_pretrained_backbone_with_a_new_head(run):
    job, snap = run
    assert (snap.pretrained, snap.pretrain_total, snap.step) == (8, 8, 6) and not snap.pretraining
    # The same pretraining again, by itself: it is deterministic, so these are the weights the run started from.
    fresh = build_nets(MODELS, SMALL.seed)
    start = {k: v.clone() for k, v in fresh[1].state_dict().items()}
    assert pretrain(fresh, MODELS, SMALL, Control())
    pretrained = fresh[1].state_dict()
    head = {"head.2.weight", "head.2.bias"}
    backbone = [k for k, v in pretrained.items() if k not in head and v.is_floating_point()]
    for k in head:  # a new head: the seeded start, not the pretrained net's head
        torch.testing.assert_close(pretrained[k], start[k], rtol=0, atol=0)
    assert any(not torch.equal(pretrained[k], start[k]) for k in backbone)
    scratch, frozen, tuned = (net.state_dict() for net in job.nets)
    for k in backbone:  # frozen: the pretrained weights and BN statistics, untouched by 6 steps on 5-9
        torch.testing.assert_close(frozen[k], pretrained[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(frozen[k], start[k]) for k in head)  # ... while its head learned
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in backbone)  # fine-tuned: it all moved on
    assert any(not torch.equal(scratch[k], pretrained[k]) for k in backbone)


def test_frozen_layers_have_no_gradient_rows_not_vanished_ones(run):
    _, snap = run
    scratch, frozen, tuned = snap.models
    assert np.isnan(frozen.grad_norm[:, :-1]).all() and (frozen.grad_norm[:, -1] > 0).all()
    assert (scratch.grad_norm > 0).all() and (tuned.grad_norm > 0).all()
    fig = plots.grad_heatmap_figure(snap.models, t)
    titles = [a.text.replace("<br>", " ") for a in fig.layout.annotations]  # long ones wrap for phones
    assert titles == ["res-8", "res-8-frozen (layers 1-7 frozen)", "res-8-ft"], titles


def test_a_run_on_two_classes_trains_and_is_tested_on_those_only():
    d = digits("mnist-5k", (0, 1))
    assert set(np.unique(d.train_labels)) == {0, 1} == set(np.unique(d.test_labels))
    assert len(d.test_labels) == int(np.isin(digits().test_labels, (0, 1)).sum())
    assert set(tensors("mnist-5k", (0, 1)).train_y.unique().tolist()) == {0, 1}
    job = Job([ModelSpec(depth=8)], TrainSpec(steps=30, eval_every=30, eval_size=200, classes="0,1"),
              queue=WorkerQueue(1))
    view = job.run_blocking().models[0]
    # Tested on all ten classes, a net that only ever saw 0s and 1s could not pass ~21 % (their share).
    assert view.test_acc[-1] > 0.5, view.test_acc


def test_the_preset_link_and_a_saved_run_keep_the_transfer_settings(run):
    job, snap = run
    train = replace(PRESETS["transfer"].train, classes="6-9", pretrain_steps=50)
    params = share.to_params("transfer", train, PRESETS["transfer"].models[:2] + (ModelSpec(depth=8, transfer="finetune"),))
    assert params["classes"] == "6-9" and params["pretrain_steps"] == "50"
    back = share.from_params(params)
    assert not back.problems and back.train == train and back.models[-1].transfer == "finetune"
    bad = share.from_params({"preset": "transfer", "classes": "x"})
    assert bad.train is None and "classes" in bad.problems[0].text("en")
    again = Job.reopen(runfile.read_run(runfile.run_bytes(snap, job.nets, job.dataset, {})), queue=WorkerQueue(1))
    snap2 = again.snapshot()
    assert snap2.train == SMALL and [v.spec for v in snap2.models] == MODELS
    for a, b in zip(snap.models, snap2.models):
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    assert plots.grad_heatmap_figure(snap.models, t).to_json() == plots.grad_heatmap_figure(snap2.models, t).to_json()


def test_transfer_models_can_start_from_a_trained_run_instead(run):
    lender, _ = run
    models = [ModelSpec(depth=8, transfer="finetune", name="again"), ModelSpec(depth=14, transfer="frozen")]
    no_pretraining = replace(SMALL, pretrain_steps=0)
    with pytest.raises(LabError) as e:  # the lender has no 14-layer net: that one still needs a pretraining
        Job(models, no_pretraining, queue=WorkerQueue(1), start_from=lender)
    assert "res-14-frozen" in e.value.text("en") and "again" not in e.value.text("en")
    job = Job(models[:1], no_pretraining, queue=WorkerQueue(1), start_from=lender)
    assert job.sourced == {0} and job.snapshot().pretrain_total == 0
    fresh = build_nets(models[:1], SMALL.seed)[0].state_dict()
    given, lent = job.nets[0].state_dict(), lender.nets[0].state_dict()  # lender.nets[0]: its res-8
    for k, v in given.items():
        torch.testing.assert_close(v, fresh[k] if k.startswith("head.") else lent[k], rtol=0, atol=0, msg=k)
    assert job.run_blocking().state == "done"
    # with a pretraining step as well, only the model without a lender pretrains
    both = Job(models, replace(SMALL, pretrain_steps=4), queue=WorkerQueue(1), start_from=lender)
    assert both.sourced == {0} and both.snapshot().pretrain_total == 4


def test_stopping_during_the_pretraining_stops_the_run():
    job = Job(MODELS[:2], replace(SMALL, pretrain_steps=5000), queue=WorkerQueue(1)).start()
    deadline = time.monotonic() + hang_s(60)
    while not (job.snapshot().pretraining and job.snapshot().pretrained > 0):
        assert time.monotonic() < deadline and not job.snapshot().finished, job.snapshot()
        time.sleep(0.1)
    job.stop()
    assert job.join(hang_s(30))
    snap = job.snapshot()
    assert snap.state == "stopped" and snap.step == 0 and 0 < snap.pretrained < 5000


def test_the_cli_trains_the_transfer_preset(tmp_path, capsys):
    from resnet_viz.cli import main
    code = main(["train", "--preset", "transfer", "--model", "res-8", "--model", "res-8,transfer=frozen",
                 "--steps", "4", "--eval-every", "4", "--pretrain-steps", "4", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "pretraining 1 net(s) for 4 steps on classes 0-4 of mnist-5k, then training on classes 5-9" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [m["name"] for m in summary["models"]] == ["res-8", "res-8-frozen"]


def test_the_lab_trains_the_transfer_preset_and_marks_the_frozen_rows():
    from test_app import button, new_app, run_until, summary
    at = new_app()
    at.selectbox(key="preset_en").set_value("transfer")
    at.run()
    assert not at.exception
    assert [r["transfer"] for r in at.dataframe[0].value.to_dict("records")] == ["none", "frozen", "finetune"]
    assert next(i for i in at.text_input if i.label == "Classes trained and tested").value == "5-9"
    at.number_input[0].set_value(10)
    next(i for i in at.number_input if i.label == "Pretraining steps").set_value(10)
    button(at, "Train").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled and len(summary(a)) == 3, 90)
    assert not at.error, [e.value for e in at.error]
    assert [r["Model"] for r in summary(at)] == ["res-20", "res-20-frozen", "res-20-ft"]
    grad = next(c for c in at.get("plotly_chart") if c.key == "grad_chart")
    panels = [a["text"].replace("<br>", " ") for a in json.loads(grad.proto.spec)["layout"]["annotations"]]
    assert "res-20-frozen (layers 1-19 frozen)" in panels, panels  # the title may wrap, for phones
    # Transfer without a pretraining step is a message, and Train waits for a fix ...
    next(i for i in at.number_input if i.label == "Pretraining steps").set_value(0)
    at.run()
    assert any("no pretraining step" in e.value for e in at.error), [e.value for e in at.error]
    assert button(at, "Train").disabled
    # ... unless they start from this session's run, whose res-20 lends them its weights.
    at.radio(key="transfer_from").set_value("run")
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert any("res-20-frozen ← res-20, res-20-ft ← res-20" in c.value for c in at.caption)
    button(at, "Train").click()
    at.run()
    run_until(at, lambda a: not button(a, "Train").disabled and summary(a)
              and a.get("progress") and a.get("progress")[0].proto.text.startswith("Done"), 90)
    assert not at.error and [r["Model"] for r in summary(at)] == ["res-20", "res-20-frozen", "res-20-ft"]
