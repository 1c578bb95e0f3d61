import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from speed import hang_s

from resnet_viz.config import ModelSpec
from resnet_viz.i18n import tr
from resnet_viz.plots import diagram
from resnet_viz.plots.diagram import architecture_dot, csp_channels

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "resnet_viz" / "locales"
NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', re.M)
EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$', re.M)
CJK = re.compile(r"[\u4e00-\u9fff]")
LANGS = ("en", "zh")


def nodes(dot: str) -> dict[str, str]:
    """node id -> label, with DOT's escapes undone."""
    return {m[1]: m[2].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\") for m in NODE.finditer(dot)}


def edges(dot: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3] or "") for m in EDGE.finditer(dot)]


def esc(text: str) -> str:
    """Text as it appears inside a DOT string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def skip_edges(dot: str) -> list[str]:
    return [attrs for _, b, attrs in edges(dot) if b.endswith("_add") and diagram.SKIP_EDGE in attrs]


def check_syntax(dot: str) -> None:
    """Balanced quotes and braces (outside strings), every edge between declared nodes, and, where the
    Graphviz `dot` program is installed, a real parse."""
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    assert "rankdir=TB" in dot
    depth, in_string, escaped = 0, False, False
    for ch in dot:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            assert depth >= 0
    assert not in_string and depth == 0
    declared = set(nodes(dot))
    for a, b, _ in edges(dot):
        assert a in declared and b in declared, (a, b)
    if shutil.which("dot"):
        r = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=hang_s(60))
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr.decode()


# ---- the four nets of the lesson, both languages ----------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("depth", [8, 110])
def test_diagram_is_valid_and_small(depth, skip, lang):
    dot = architecture_dot(ModelSpec(depth=depth, skip=skip), lang)
    check_syntax(dot)
    n_nodes = len(nodes(dot))
    assert n_nodes == sum(1 for line in dot.splitlines() if "[label=" in line)
    assert n_nodes < 60
    assert "diagram." not in dot
    if lang == "zh":
        assert CJK.search(dot)
    labels = "\n".join(nodes(dot).values())
    for key in ("input", "pool"):
        assert tr(lang, f"diagram.{key}", size=28 if key == "input" else "4×4", c=64) in labels
    assert tr(lang, "diagram.linear", c=64, classes=10) in labels


@pytest.mark.parametrize("lang", LANGS)
def test_depth_110_collapses_each_stage(lang):
    dot = architecture_dot(ModelSpec(depth=110), lang)
    labels = nodes(dot)
    more = [label for label in labels.values() if tr(lang, "diagram.collapse", k=16) in label]
    assert len(more) == 3  # one per stage: first block, "… × 16 more", block 18
    blocks = [i for i in labels if re.fullmatch(r"s\d_b\d+", i)]
    assert sorted(blocks) == ["s1_b1", "s1_b18", "s2_b1", "s2_b18", "s3_b1", "s3_b18"]
    assert labels["s2_b18"].startswith(tr(lang, "diagram.block", j=18))
    # The main path runs through the collapse node.
    assert ("s1_b1_relu", "s1_more") in [(a, b) for a, b, _ in edges(dot)]
    assert ("s1_more", "s1_b18") in [(a, b) for a, b, _ in edges(dot)]


@pytest.mark.parametrize("depth,shown,k", [(8, [1], None), (14, [1, 2], None), (20, [1, 2, 3], None),
                                           (26, [1, 4], 2), (56, [1, 9], 7)])
def test_collapse_only_above_three_blocks(depth, shown, k):
    dot = architecture_dot(ModelSpec(depth=depth))
    labels = nodes(dot)
    for si in (1, 2, 3):
        assert sorted(int(i.split("_b")[1]) for i in labels if re.fullmatch(rf"s{si}_b\d+", i)) == shown
        assert (f"s{si}_more" in labels) == (k is not None)
    if k is None:
        assert "…" not in dot
    else:
        assert labels["s1_more"].startswith(tr("en", "diagram.collapse", k=k))


# ---- skip paths ---------------------------------------------------------------------------------------

def test_residual_has_labelled_skip_edges_and_plain_has_none():
    res = architecture_dot(ModelSpec(depth=20, skip=True))
    plain = architecture_dot(ModelSpec(depth=20, skip=False))
    skips = skip_edges(res)
    assert len(skips) == 9  # one per block
    assert sum(f'label="{tr("en", "diagram.skip_zero_pad")}"' in s for s in skips) == 2  # stage 2 and 3 entry
    assert sum('label="x"' in s for s in skips) == 7
    assert sum(1 for i in nodes(res) if i.endswith("_add")) == 9
    assert not skip_edges(plain)
    assert not [i for i in nodes(plain) if i.endswith("_add")]
    for key in ("skip_zero_pad", "skip_projection", "collapse_skip"):
        assert tr("en", f"diagram.{key}") not in plain
    assert "weight=0" not in plain  # no edge leaves the main path
    # Same blocks in both: the plain net differs only by the missing skip path.
    assert {i for i in nodes(plain) if "_b" in i} <= set(nodes(res))


@pytest.mark.parametrize("lang", LANGS)
def test_projection_shortcut_label(lang):
    dot = architecture_dot(ModelSpec(depth=14, shortcut="B"), lang)
    skips = skip_edges(dot)
    assert sum(esc(tr(lang, "diagram.skip_projection")) in s for s in skips) == 2
    assert not any(esc(tr(lang, "diagram.skip_zero_pad")) in s for s in skips)


def test_unweighted_has_no_alpha_beta():
    dot = architecture_dot(ModelSpec(depth=20))
    assert "α" not in dot and "β" not in dot


@pytest.mark.parametrize("lang", LANGS)
def test_weighted_labels(lang):
    dot = architecture_dot(ModelSpec(depth=14, beta=0.5), lang)
    check_syntax(dot)
    skips = skip_edges(dot)
    assert skips and all("β=0.5" in s for s in skips)
    branch = [attrs for a, b, attrs in edges(dot) if re.fullmatch(r"s\d_b\d+", a) and b == a + "_add"]
    assert len(branch) == 6 and all('label="α=1"' in s for s in branch)
    assert tr(lang, "diagram.learned") not in dot

    rezero = architecture_dot(ModelSpec(depth=14, alpha=0.0, learn_alpha=True), lang)
    learned = tr(lang, "diagram.qualifiers", items=tr(lang, "diagram.learned"))
    assert f"α=0{learned}" in rezero
    assert "β=1\"" in rezero  # beta fixed: no marker
    assert tr(lang, "diagram.per_channel") not in rezero

    per_channel = architecture_dot(ModelSpec(depth=8, beta=2.0, learn_beta=True, scale="channel"), lang)
    sep = tr(lang, "diagram.list_sep")
    items = tr(lang, "diagram.learned") + sep + tr(lang, "diagram.per_channel")
    both = tr(lang, "diagram.qualifiers", items=items)
    assert f"β=2{both}" in per_channel
    assert f"α=1{tr(lang, 'diagram.qualifiers', items=tr(lang, 'diagram.per_channel'))}" in per_channel


def test_plain_net_ignores_alpha_beta():
    dot = architecture_dot(ModelSpec(depth=14, skip=False, alpha=0.5, beta=0.5))
    assert "α" not in dot and "β" not in dot


# ---- CSP stages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fusion", ["last", "first"])
def test_csp_stage_structure(fusion, lang):
    dot = architecture_dot(ModelSpec(depth=20, csp=0.5, csp_fusion=fusion), lang)
    check_syntax(dot)
    labels = nodes(dot)
    pairs = [(a, b) for a, b, _ in edges(dot)]
    assert labels["s1_split"] == tr(lang, "diagram.split", c=16, bypass=8, blocks=8)
    assert labels["s2_split"] == tr(lang, "diagram.split", c=32, bypass=16, blocks=16)
    assert labels["s3_split"] == tr(lang, "diagram.split", c=64, bypass=32, blocks=32)
    # A downsampling conv only where the shape changes: not in stage 1 (stem already gives 16 channels).
    assert "s1_down" not in labels and "s2_down" in labels and "s3_down" in labels
    assert "16→32" in labels["s2_down"] and "32→64" in labels["s3_down"]
    assert ("s2_down", "s2_split") in pairs
    # The blocks are c_blocks wide and keep their shape: identity skips only.
    assert all('label="x"' in s for s in skip_edges(dot))
    assert labels["s2_b1"] == tr(lang, "diagram.block", j=1) + "\nconv3×3-BN-ReLU-conv3×3-BN"
    for si, (c, c_blocks, c_bypass) in enumerate([(16, 8, 8), (32, 16, 16), (64, 32, 32)], 1):
        assert labels[f"s{si}_concat"] == tr(lang, "diagram.concat", c=c)
        bypass = [attrs for a, b, attrs in edges(dot) if (a, b) == (f"s{si}_split", f"s{si}_concat")]
        assert len(bypass) == 1 and esc(tr(lang, "diagram.split_bypass", c=c_bypass)) in bypass[0]
        into = [attrs for a, b, attrs in edges(dot) if (a, b) == (f"s{si}_split", f"s{si}_b1")]
        assert len(into) == 1 and esc(tr(lang, "diagram.split_blocks", gamma="0.5", c=c_blocks)) in into[0]
        if fusion == "last":  # transition on the block path, then concat
            assert (f"s{si}_b3_relu", f"s{si}_trans") in pairs and (f"s{si}_trans", f"s{si}_concat") in pairs
        else:  # concat, then transition on all channels
            assert (f"s{si}_b3_relu", f"s{si}_concat") in pairs and (f"s{si}_concat", f"s{si}_trans") in pairs
        assert labels[f"s{si}_trans"] == tr(lang, "diagram.transition", ops="conv1×1-BN-ReLU",
                                            c=c_blocks if fusion == "last" else c)
    last = "s3_concat" if fusion == "last" else "s3_trans"
    assert (last, "pool") in pairs


def test_csp_channel_rounding_and_deep_csp_stays_small():
    assert csp_channels(0.5, 16) == (8, 8)
    assert csp_channels(0.3, 16) == (5, 11)
    assert csp_channels(0.1, 4) == (1, 3)  # at least one channel goes through the blocks
    dot = architecture_dot(ModelSpec(depth=110, csp=0.3, alpha=0.0, learn_alpha=True, width=2.0))
    check_syntax(dot)
    labels = nodes(dot)
    assert len(labels) < 60
    assert labels["s1_split"] == tr("en", "diagram.split", c=32, bypass=22, blocks=10)
    assert "s1_more" in labels and tr("en", "diagram.collapse", k=16) in labels["s1_more"]


def test_csp_plain_and_no_batch_norm():
    dot = architecture_dot(ModelSpec(depth=8, skip=False, csp=0.5, batch_norm=False, csp_fusion="first"))
    check_syntax(dot)
    labels = nodes(dot)
    assert not skip_edges(dot)
    assert "BN" not in dot
    assert labels["s1_b1"].endswith("conv3×3-ReLU-conv3×3")
    assert "conv1×1-ReLU" in labels["s1_trans"]


def test_csp_channels_match_the_model():
    pytest.importorskip("torch")
    from resnet_viz.models import build_model
    spec = ModelSpec(depth=8, csp=0.3, width=0.5)
    model = build_model(spec)
    for stage, c in zip(model.stages, spec.cifar_layout()[1]):
        assert (stage.c_blocks, stage.c_bypass) == csp_channels(spec.csp, c)


# ---- sizes, languages, escaping -------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("stem_stride,sizes", [(2, (14, 7, 4)), (1, (28, 14, 7))])
def test_stage_sizes(stem_stride, sizes, lang):
    spec = ModelSpec(depth=14, stem_stride=stem_stride, width=0.5)
    dot = architecture_dot(spec, lang)
    for i, (c, h) in enumerate(zip(spec.cifar_layout()[1], sizes), 1):
        stage = tr(lang, "diagram.stage", i=i, c=c, size=f"{h}×{h}")
        assert f"label={json.dumps(stage, ensure_ascii=False)};" in dot
    labels = nodes(dot)
    assert labels["stem"] == tr(lang, "diagram.stem", c=8, s=stem_stride, size=f"{sizes[0]}×{sizes[0]}")
    assert labels["pool"] == tr(lang, "diagram.pool", size=f"{sizes[2]}×{sizes[2]}", c=32)


def test_stage_sizes_match_the_model():
    torch = pytest.importorskip("torch")
    from resnet_viz.models import build_model
    for stem_stride in (1, 2):
        spec = ModelSpec(depth=8, stem_stride=stem_stride)
        model = build_model(spec).eval()
        x = model.stem(torch.zeros(1, 1, 28, 28))
        dot = architecture_dot(spec)
        for i, stage in enumerate(model.stages, 1):
            with torch.no_grad():
                x = stage(x)
            c, h = x.shape[1], x.shape[2]
            assert tr("en", "diagram.stage", i=i, c=c, size=f"{h}×{h}") in dot


@pytest.mark.parametrize("spec", [
    ModelSpec(depth=8, skip=False), ModelSpec(depth=110), ModelSpec(depth=14, shortcut="B", beta=0.5),
    ModelSpec(depth=26, alpha=0.0, learn_alpha=True, learn_beta=True, scale="channel"),
    ModelSpec(depth=20, csp=0.5), ModelSpec(depth=32, csp=0.7, csp_fusion="first", batch_norm=False),
], ids=lambda s: s.name)
def test_every_word_is_translated(spec):
    en, zh = architecture_dot(spec, "en"), architecture_dot(spec, "zh")
    for dot in (en, zh):
        check_syntax(dot)
        assert "diagram." not in dot
        assert "{" not in "".join(nodes(dot).values())  # no unfilled placeholder
    assert CJK.search(zh) and not CJK.search(en)
    assert en != zh
    # Same picture in both languages: the same nodes and edges.
    assert set(nodes(en)) == set(nodes(zh))
    assert [(a, b) for a, b, _ in edges(en)] == [(a, b) for a, b, _ in edges(zh)]
    assert architecture_dot(spec, "xx") == en  # unknown language falls back to English


def test_catalogue_keys_in_both_languages_and_all_used():
    source = Path(diagram.__file__).read_text(encoding="utf-8")
    catalogues = {lang: json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGS}
    keys = {lang: {k for k in cat if k.startswith("diagram.")} for lang, cat in catalogues.items()}
    assert keys["en"] == keys["zh"] and len(keys["en"]) > 10
    for key in keys["en"]:
        assert f'"{key}"' in source or f'"{key.removeprefix("diagram.")}"' in source, f"{key} is never used"
        assert catalogues["zh"][key] and (CJK.search(catalogues["zh"][key]) or not re.search(
            r"[A-Za-z]{3,}", re.sub(r"\{\w+\}", "", catalogues["zh"][key]))), key


def test_quotes_and_backslashes_in_names_are_escaped():
    spec = ModelSpec(depth=8, name='my "net" \\ {x}')
    dot = architecture_dot(spec)
    check_syntax(dot)
    assert esc(tr("en", "diagram.title", name=spec.name, depth=8, n=1)) in dot


def test_module_needs_neither_torch_nor_streamlit():
    code = ("import sys; from resnet_viz.plots.diagram import architecture_dot; "
            "from resnet_viz.config import ModelSpec; "
            "architecture_dot(ModelSpec(csp=0.5)); "
            "assert 'torch' not in sys.modules and 'streamlit' not in sys.modules, sorted(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=hang_s(60))
    assert r.returncode == 0, r.stderr


# ---- the other families, drawn from their layer tables ---------------------------------------------------

FAMILY_SPECS = [dict(family="resnet", depth=50), dict(family="resnet", depth=34, skip=False),
                dict(family="resnet", depth=18, stem="imagenet", width=1.0), dict(family="resnet", depth=101, csp=0.5),
                dict(family="lenet5"), dict(family="alexnet"), dict(family="vgg", depth=19),
                dict(family="vgg", depth=11, batch_norm=False)]


@pytest.mark.parametrize("kw", FAMILY_SPECS, ids=lambda kw: ModelSpec(**kw).name)
def test_every_family_is_drawn_in_both_languages(kw):
    from resnet_viz.models import layer_table
    spec = ModelSpec(**kw)
    table = layer_table(spec)
    en, zh = architecture_dot(spec, "en", table), architecture_dot(spec, "zh", table)
    for dot in (en, zh):
        check_syntax(dot)
        assert "diagram." not in dot and "op." not in dot
        assert "{" not in "".join(nodes(dot).values())
        assert len(nodes(dot)) < 70  # long stages collapse: ResNet-101's 23-block stage is 3 nodes
    assert CJK.search(zh) and not CJK.search(en)
    assert set(nodes(en)) == set(nodes(zh))
    labels = "\n".join(nodes(en).values())
    if spec.residual_family:
        assert len(re.findall(r"^ *subgraph cluster_s\d", en, re.M)) == 4
        assert (spec.depth >= 50) == ("conv1×1-BN-ReLU-conv3×3-BN-ReLU-conv1×1-BN" in labels)
        assert bool(skip_edges(en)) == spec.skip
        assert ("Max pool 3×3, stride 2" in labels) == (spec.stem == "imagenet")
    else:
        assert not skip_edges(en)
        assert labels.count("fully connected") == (2 if spec.family == "lenet5" else 3)


def test_resnet50_diagram_shows_its_stages_and_bottleneck_widths():
    from resnet_viz.models import layer_table
    spec = ModelSpec(family="resnet", depth=50, width=1.0, stem="imagenet")
    dot = architecture_dot(spec, "en", layer_table(spec))
    for i, (c, side) in enumerate(zip((256, 512, 1024, 2048), (7, 4, 2, 1), strict=True), 1):
        assert tr("en", "diagram.stage", i=i, c=c, size=f"{side}×{side}") in dot
    labels = nodes(dot)
    assert tr("en", "diagram.bottleneck", mid=64, c=256) in labels["s1_b1"]
    assert labels["s3_more"].startswith(tr("en", "diagram.collapse", k=4))  # 6 blocks: 1, … × 4, 6
    assert tr("en", "diagram.title_stages", name=spec.name, depth=50, blocks="3, 4, 6, 3") in dot.replace("\\n", "\n")
    with pytest.raises(ValueError):
        architecture_dot(spec)  # the other families need their table
