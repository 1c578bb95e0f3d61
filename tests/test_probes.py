"""The probes' numbers are the ones torch computes directly, read in one tensor per step."""
import torch
import torch.nn.functional as nnf

from resnet_viz.config import ModelSpec
from resnet_viz.data.arrays import tensors
from resnet_viz.models import build_model
from resnet_viz.training.probes import ACT_SAMPLE, Probes


def test_probes_match_direct_computation():
    torch.manual_seed(0)
    net = build_model(ModelSpec(depth=14, learn_alpha=True))
    probes = Probes(net)
    d = tensors()
    x, y = d.normalise(d.train_x[:32]), d.train_y[:32]
    outputs, paths = {}, {}
    hooks = [b.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().clone()))
             for name, b in net.blocks()]
    for name, b in net.blocks():
        inner = b.observer
        b.observer = (lambda r, i, name=name, inner=inner: (paths.__setitem__(name, (r.detach().clone(),
                                                                                      i.detach().clone())),
                                                            inner(r, i)))
    nnf.cross_entropy(net(x), y).backward()
    out = probes.read()
    for h in hooks:
        h.remove()
    layers, blocks = len(probes.layer_names), len(probes.block_names)
    grads = torch.stack([p.grad.norm() for _, p in net.weight_layers()])
    assert torch.allclose(out[:layers], grads, rtol=1e-5)
    mean, std, ratio, alpha, beta = out[layers:].reshape(5, blocks)
    for i, (name, _) in enumerate(net.blocks()):
        sample = outputs[name][:ACT_SAMPLE]
        s, m = torch.std_mean(sample, correction=0)
        assert torch.isclose(mean[i], m, rtol=1e-4) and torch.isclose(std[i], s, rtol=1e-3)
        r, idt = paths[name]
        assert torch.isclose(ratio[i], r[:ACT_SAMPLE].norm() / idt[:ACT_SAMPLE].norm(), rtol=1e-4)
    assert torch.allclose(alpha, torch.ones(blocks)) and torch.allclose(beta, torch.ones(blocks))
    assert torch.isnan(probes.read()[layers:layers + 3 * blocks]).all()  # reset after each read


def test_removed_probes_leave_the_model_clean():
    net = build_model(ModelSpec(depth=8))
    Probes(net).remove()
    assert all(not b._forward_hooks and b.observer is None for _, b in net.blocks())
