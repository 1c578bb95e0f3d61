"""architecture_dot(spec, lang, table): the network of a ModelSpec as Graphviz DOT source, top to bottom.

Residual families: input -> stem (a 3x3 conv, or ResNet's 7x7 conv and 3x3 max pool) -> stages of plain or
residual blocks (basic or bottleneck), or CSP stages -> global average pool -> linear. A stage with more than
3 blocks shows its first block, one "… × k more" node and its last block, so even ResNet-152 stays a short,
readable picture. Classic nets (LeNet-5, AlexNet, VGG): their layers in order, a VGG stage's identical convs
in one node. The cifar family is laid out from its spec alone; the others from their layer table
(models.layer_table, plain rows), so no shape is computed twice. The browser renders the source
(st.graphviz_chart), so no system Graphviz is needed. Every word a reader sees comes from the `diagram.*` and
`op.*` catalogue keys; only symbols (conv3×3, BN, ReLU, α, β, γ, +) are written here.
"""
from dataclasses import dataclass
from math import ceil

from ..config import ModelSpec
from ..i18n import tr
from ..summary import op_text, shape_text

IMAGE_SIZE = 28
NUM_CLASSES = 10
MAX_SHOWN_BLOCKS = 3  # a stage with more blocks is collapsed to first, "… × k more", last

FONT = "Helvetica"
GREY, BLUE, PALE_BLUE, GREEN, ORANGE, WHITE = "#e6e6e6", "#dbeafe", "#eef5ff", "#d7f0d7", "#fde3c4", "#ffffff"
BORDER, EDGE, SKIP_EDGE, BYPASS_EDGE, CLUSTER = "#8a8a8a", "#555555", "#2e8b57", "#d2791c", "#9aa7b8"


def quote(text: str) -> str:
    """A DOT string literal: backslashes and double quotes escaped, newlines as centred line breaks."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _attrs(**attrs) -> str:
    return ", ".join(f"{k}={v}" for k, v in attrs.items())


def _ops(*ops: str, batch_norm: bool) -> str:
    """Layer names joined by '-', the BNs dropped for a net without batch norm."""
    return "-".join(op for op in ops if batch_norm or op != "BN")


def _size(h: int) -> str:
    return f"{h}×{h}"


def csp_channels(gamma: float, channels: int) -> tuple[int, int]:
    """(through the blocks, bypass) channels of a CSP stage, computed as blocks.CSPStage does."""
    c_blocks = max(1, round(gamma * channels))
    return c_blocks, channels - c_blocks


class _Dot:
    """Collects node and edge lines; node lines start with `id [label=`, edge lines never contain it. Edges are
    written after all nodes, at the top level: an edge inside a cluster would pull both its nodes into it."""

    def __init__(self):
        self.lines: list[str] = []
        self.edges: list[str] = []
        self.indent = 1

    def add(self, line: str) -> None:
        self.lines.append(" " * self.indent + line)

    def node(self, node_id: str, label: str, **attrs) -> str:
        extra = ", " + _attrs(**attrs) if attrs else ""
        self.add(f"{node_id} [label={quote(label)}{extra}];")
        return node_id

    def edge(self, a: str, b: str, label: str = "", **attrs) -> None:
        if label:
            attrs["label"] = quote(label)
        self.edges.append(f" {a} -> {b}" + (f" [{_attrs(**attrs)}]" if attrs else "") + ";")

    def open_cluster(self, name: str, label: str) -> None:
        self.add(f"subgraph {name} {{")
        self.indent += 1
        self.add(f'label={quote(label)}; style="rounded"; color="{CLUSTER}"; fontname="{FONT}"; fontsize=13; '
                 'margin=10;')

    def close_cluster(self) -> None:
        self.indent -= 1
        self.add("}")


def _scale_label(lang: str, symbol: str, value: float, learned: bool, per_channel: bool) -> str:
    """An edge label such as 'α=0 (learned)': the start value, then whether it is learned and per channel."""
    notes = [tr(lang, key) for key, on in (("diagram.learned", learned), ("diagram.per_channel", per_channel))
             if on]
    text = f"{symbol}={value:g}"
    if notes:
        text += tr(lang, "diagram.qualifiers", items=tr(lang, "diagram.list_sep").join(notes))
    return text


@dataclass(frozen=True)
class _Stage:
    n: int  # blocks
    c_in: int
    c_out: int
    stride: int  # of the first block
    size: int  # output side
    mid: int = 0  # a bottleneck's inner width (0: basic blocks)


@dataclass(frozen=True)
class _Layout:
    """What a residual-family net looks like: its stem nodes (id, label), its stages, its head."""

    stem: tuple[tuple[str, str], ...]
    stages: tuple[_Stage, ...]
    title: str


class _Builder:
    def __init__(self, spec: ModelSpec, lang: str):
        self.spec, self.lang, self.dot = spec, lang, _Dot()
        self.mid = 0  # the bottleneck width of the stage being drawn

    def t(self, key: str, **params) -> str:
        return tr(self.lang, f"diagram.{key}", **params)

    def block(self, prev: str, node_id: str, j: int, c_in: int, c_out: int, stride: int,
              in_label: str = "") -> str:
        """One block (plain or residual) fed by `prev`; returns the id of its output (the ReLU node)."""
        spec, dot = self.spec, self.dot
        if self.mid:
            label = self.t("block", j=j) + "\n" + _ops("conv1×1", "BN", "ReLU", "conv3×3", "BN", "ReLU",
                                                       "conv1×1", "BN", batch_norm=spec.batch_norm)
            label += "\n" + self.t("bottleneck", mid=self.mid, c=c_out)
        else:
            label = self.t("block", j=j) + "\n" + _ops("conv3×3", "BN", "ReLU", "conv3×3", "BN",
                                                       batch_norm=spec.batch_norm)
        if stride != 1 or c_in != c_out:
            label += "\n" + self.t("block_down", s=stride, cin=c_in, cout=c_out)
        body = dot.node(node_id, label, fillcolor=quote(BLUE))
        dot.edge(prev, body, label=in_label, weight=10)
        relu = dot.node(node_id + "_relu", "ReLU", fillcolor=quote(WHITE), fontsize=10, height=0.25)
        if not spec.skip:
            dot.edge(body, relu, weight=10)
            return relu
        add = dot.node(node_id + "_add", "+", shape="circle", fillcolor=quote(GREEN), fontsize=14,
                       width=0.3, fixedsize="true")
        if stride == 1 and c_in == c_out:
            skip = self.t("skip_identity")
        else:
            skip = self.t("skip_zero_pad" if spec.shortcut == "A" else "skip_projection")
        branch = {}
        if spec.weighted:
            per_channel = spec.scale == "channel"
            branch["label"] = _scale_label(self.lang, "α", spec.alpha, spec.learn_alpha, per_channel)
            skip += "\n" + _scale_label(self.lang, "β", spec.beta, spec.learn_beta, per_channel)
        dot.edge(body, add, weight=10, **branch)
        dot.edge(prev, add, label=skip, color=quote(SKIP_EDGE), fontcolor=quote(SKIP_EDGE), penwidth=1.6,
                 weight=0)
        dot.edge(add, relu, weight=10)
        return relu

    def blocks(self, prev: str, si: int, n: int, c_in: int, c_out: int, stride: int, in_label: str = "") -> str:
        """The n blocks of stage si (the first one may change the shape), collapsed when n > 3."""
        shown = range(1, n + 1) if n <= MAX_SHOWN_BLOCKS else (1, n)
        for j in shown:
            if j == n and n > MAX_SHOWN_BLOCKS:
                label = self.t("collapse", k=n - 2)
                if self.spec.skip:
                    label += "\n" + self.t("collapse_skip")
                more = self.dot.node(f"s{si}_more", label, fillcolor=quote(PALE_BLUE),
                                     style='"rounded,dashed,filled"')
                self.dot.edge(prev, more, weight=10)
                prev = more
            cin, s = (c_in, stride) if j == 1 else (c_out, 1)
            prev = self.block(prev, f"s{si}_b{j}", j, cin, c_out, s, in_label if j == 1 else "")
        return prev

    def csp_stage(self, prev: str, si: int, n: int, c_in: int, c_out: int, stride: int) -> str:
        spec, dot = self.spec, self.dot
        if stride != 1 or c_in != c_out:
            down = dot.node(f"s{si}_down", self.t("csp_down", ops=_ops("conv3×3", "BN", "ReLU",
                                                                        batch_norm=spec.batch_norm),
                                                  s=stride, cin=c_in, cout=c_out), fillcolor=quote(ORANGE))
            dot.edge(prev, down, weight=10)
            prev = down
        c_blocks, c_bypass = csp_channels(spec.csp, c_out)
        split = dot.node(f"s{si}_split", self.t("split", c=c_out, bypass=c_bypass, blocks=c_blocks),
                         fillcolor=quote(ORANGE))
        dot.edge(prev, split, weight=10)
        # The edge into the first block carries the share of the channels that goes through the blocks.
        into_blocks = self.t("split_blocks", gamma=f"{spec.csp:g}", c=c_blocks)
        out = self.blocks(split, si, n, c_blocks, c_blocks, 1, into_blocks)
        concat_label = self.t("concat", c=c_out)
        transition_ops = _ops("conv1×1", "BN", "ReLU", batch_norm=spec.batch_norm)
        if spec.csp_fusion == "last":
            trans = dot.node(f"s{si}_trans", self.t("transition", ops=transition_ops, c=c_blocks),
                             fillcolor=quote(ORANGE))
            dot.edge(out, trans, weight=10)
            concat = dot.node(f"s{si}_concat", concat_label, fillcolor=quote(ORANGE))
            dot.edge(trans, concat, weight=10)
            last = concat
        else:
            concat = dot.node(f"s{si}_concat", concat_label, fillcolor=quote(ORANGE))
            dot.edge(out, concat, weight=10)
            last = dot.node(f"s{si}_trans", self.t("transition", ops=transition_ops, c=c_out),
                            fillcolor=quote(ORANGE))
            dot.edge(concat, last, weight=10)
        if c_bypass > 0:
            dot.edge(split, concat, label=self.t("split_bypass", c=c_bypass), color=quote(BYPASS_EDGE),
                     fontcolor=quote(BYPASS_EDGE), style="dashed", penwidth=1.6, weight=0)
        return last

    def cifar_layout(self) -> _Layout:
        spec = self.spec
        n, channels = spec.cifar_layout()
        size = ceil(IMAGE_SIZE / spec.stem_stride)
        stem = (("stem", self.t("stem", c=channels[0], s=spec.stem_stride, size=_size(size))),)
        stages, c_in = [], channels[0]
        for si, c_out in enumerate(channels, 1):
            stride = 1 if si == 1 else 2
            size = ceil(size / stride)
            stages.append(_Stage(n, c_in, c_out, stride, size))
            c_in = c_out
        return _Layout(stem, tuple(stages), self.t("title", name=spec.name, depth=spec.depth, n=n))

    def table_layout(self, table) -> _Layout:
        """A residual-family net's layout read off its layer table."""
        stem, blocks, downs = [], {}, {}
        for row in table.rows:
            op, stage = row.op, _stage_index(row)
            if stage is None and not blocks and op["kind"] == "conv":
                stem.append(("stem", self.t("stem_k", k=op["k"], c=op["c"], s=op["stride"],
                                            size=_size(row.shape[1]))))
            elif stage is None and not blocks and op["kind"] == "maxpool":
                stem.append(("stem_pool", self.t("maxpool", k=op["k"], s=op["stride"], size=_size(row.shape[1]),
                                                 c=row.shape[0])))
            elif row.name.endswith(".down"):
                downs[stage] = row
            elif "stage" in op:
                blocks.setdefault(stage, []).append(row)
        stages, c_in = [], table.rows[len(stem) - 1].shape[0]
        for si, rows in blocks.items():
            first = rows[0].op
            if self.spec.csp:  # the stage's shape is its downsampling conv's; the blocks see a share of it
                down = downs.get(si)
                c_out, stride = (down.op["c"], down.op["stride"]) if down else (c_in, 1)
            else:
                c_out, stride = first["c"], first["stride"]
            mid = first["mid"] if first["kind"] == "bottleneck" else 0
            stages.append(_Stage(len(rows), c_in, c_out, stride, rows[-1].shape[1], mid))
            c_in = c_out
        counts = ", ".join(str(s.n) for s in stages)
        return _Layout(tuple(stem), tuple(stages), self.t("title_stages", name=self.spec.name,
                                                          depth=self.spec.depth, blocks=counts))

    def build(self, layout: _Layout) -> str:
        spec, dot = self.spec, self.dot
        prev = dot.node("input", self.t("input", size=IMAGE_SIZE), fillcolor=quote(WHITE))
        for node_id, label in layout.stem:
            node = dot.node(node_id, label, fillcolor=quote(GREY))
            dot.edge(prev, node, weight=10)
            prev = node
        for si, stage in enumerate(layout.stages, 1):
            self.mid = stage.mid
            dot.open_cluster(f"cluster_s{si}", self.t("stage", i=si, c=stage.c_out, size=_size(stage.size)))
            if spec.csp:
                prev = self.csp_stage(prev, si, stage.n, stage.c_in, stage.c_out, stage.stride)
            else:
                prev = self.blocks(prev, si, stage.n, stage.c_in, stage.c_out, stage.stride)
            dot.close_cluster()
        last = layout.stages[-1]
        pool = dot.node("pool", self.t("pool", size=_size(last.size), c=last.c_out), fillcolor=quote(GREY))
        dot.edge(prev, pool, weight=10)
        head = dot.node("head", self.t("linear", c=last.c_out, classes=NUM_CLASSES), fillcolor=quote(GREY))
        dot.edge(pool, head, weight=10)
        return self.document(layout.title)

    def classic(self, table) -> str:
        """A plain classic net, layer by layer; a stage's consecutive identical convs (VGG) in one node."""
        dot = self.dot
        prev = dot.node("input", self.t("input", size=IMAGE_SIZE), fillcolor=quote(WHITE))
        groups: list[list] = []
        for row in table.rows:
            same = groups and groups[-1][0].op == row.op and row.op["kind"] == "conv" and \
                _stage_of(groups[-1][0].name) == _stage_of(row.name)
            if same:
                groups[-1].append(row)
            else:
                groups.append([row])
        cluster = None
        for i, group in enumerate(groups):
            row = group[0]
            stage = _stage_of(row.name)
            if stage != cluster:
                if cluster is not None:
                    dot.close_cluster()
                if stage is not None:
                    dot.open_cluster(f"cluster_{stage}", self.t("stage", i=stage[1:], c=group[-1].shape[0],
                                                                size=_size(group[-1].shape[-1])))
                cluster = stage
            label = op_text(row.op, self.lang, len(group)) + "\n→ " + shape_text(group[-1].shape)
            kind = row.op["kind"]
            color = BLUE if kind == "conv" else GREY if kind == "fc" else WHITE
            name = row.name.partition(".")[2] if stage else row.name  # inside its stage: 'pool', not 's1.pool'
            node = dot.node(f"l{i}", f"{name}: {label}" if len(group) == 1 else label, fillcolor=quote(color))
            dot.edge(prev, node, weight=10)
            prev = node
        if cluster is not None:
            dot.close_cluster()
        return self.document(self.t("title_classic", name=self.spec.name, depth=self.spec.depth))

    def document(self, title: str) -> str:
        # A white page, not a transparent one: the black text must stay readable under a dark theme too.
        header = [
            "digraph architecture {",
            f' graph [rankdir=TB, labelloc=t, label={quote(title)}, fontname="{FONT}", fontsize=15, '
            'nodesep=0.35, ranksep=0.3, bgcolor="white"];',
            f' node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=12, color="{BORDER}", '
            'margin="0.15,0.06"];',
            f' edge [fontname="{FONT}", fontsize=11, color="{EDGE}", arrowsize=0.7];',
        ]
        return "\n".join(header + self.dot.lines + self.dot.edges + ["}"]) + "\n"


def _stage_of(name: str) -> str | None:
    """'s3' for a VGG layer 's3.conv2' or 's3.pool'; None for layers outside stages."""
    head, dot, _ = name.partition(".")
    return head if dot and head[:1] == "s" and head[1:].isdigit() else None


def _stage_index(row) -> int | None:
    """The stage a residual-family row belongs to: a block's op says so, a CSP conv's name ('s2.down')."""
    if "stage" in row.op:
        return row.op["stage"]
    head, dot, _ = row.name.partition(".")
    return int(head[1:]) if dot and head[:1] == "s" and head[1:].isdigit() else None


def architecture_dot(spec: ModelSpec, lang: str = "en", table=None) -> str:
    """Graphviz DOT source of `spec`'s network, top to bottom, with its words in `lang`. Families other than
    cifar need their layer table (models.layer_table(spec), or a ModelView's `table`)."""
    builder = _Builder(spec, lang)
    if spec.family == "cifar":
        return builder.build(builder.cifar_layout())
    if table is None:
        raise ValueError(f"the {spec.family} family is drawn from its layer table: pass table=")
    if spec.residual_family:
        return builder.build(builder.table_layout(table))
    return builder.classic(table)


__all__ = ["architecture_dot", "csp_channels", "quote"]
