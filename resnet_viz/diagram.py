"""architecture_dot(spec, lang): the network of a ModelSpec as Graphviz DOT source, drawn top to bottom.

Mirrors models.py and blocks.py: input -> stem conv -> three stages (plain or residual blocks, or CSP stages)
-> global average pool -> linear. A stage with more than 3 blocks shows its first block, one "… × k more"
node and its last block, so even depth 110 stays a short, readable picture. The browser renders the source
(st.graphviz_chart), so no system Graphviz is needed. Every word a reader sees comes from the `diagram.*`
catalogue keys; only symbols (conv3×3, BN, ReLU, α, β, γ, +) are written here.
"""
from math import ceil

from .config import ModelSpec
from .i18n import tr

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


class _Builder:
    def __init__(self, spec: ModelSpec, lang: str):
        self.spec, self.lang, self.dot = spec, lang, _Dot()

    def t(self, key: str, **params) -> str:
        return tr(self.lang, f"diagram.{key}", **params)

    def block(self, prev: str, node_id: str, j: int, c_in: int, c_out: int, stride: int,
              in_label: str = "") -> str:
        """One block (plain or residual) fed by `prev`; returns the id of its output (the ReLU node)."""
        spec, dot = self.spec, self.dot
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

    def build(self) -> str:
        spec, dot = self.spec, self.dot
        n = spec.blocks_per_stage
        channels = spec.stage_channels()
        size = ceil(IMAGE_SIZE / spec.stem_stride)
        prev = dot.node("input", self.t("input", size=IMAGE_SIZE), fillcolor=quote(WHITE))
        stem = dot.node("stem", self.t("stem", c=channels[0], s=spec.stem_stride, size=_size(size)),
                        fillcolor=quote(GREY))
        dot.edge(prev, stem, weight=10)
        prev, c_in = stem, channels[0]
        for si, c_out in enumerate(channels, 1):
            stride = 1 if si == 1 else 2
            size = ceil(size / stride)
            dot.open_cluster(f"cluster_s{si}", self.t("stage", i=si, c=c_out, size=_size(size)))
            if spec.csp:
                prev = self.csp_stage(prev, si, n, c_in, c_out, stride)
            else:
                prev = self.blocks(prev, si, n, c_in, c_out, stride)
            dot.close_cluster()
            c_in = c_out
        pool = dot.node("pool", self.t("pool", size=_size(size), c=c_in), fillcolor=quote(GREY))
        dot.edge(prev, pool, weight=10)
        head = dot.node("head", self.t("linear", c=c_in, classes=NUM_CLASSES), fillcolor=quote(GREY))
        dot.edge(pool, head, weight=10)
        title = self.t("title", name=spec.name, depth=spec.depth, n=n)
        # A white page, not a transparent one: the black text must stay readable under a dark theme too.
        header = [
            "digraph architecture {",
            f' graph [rankdir=TB, labelloc=t, label={quote(title)}, fontname="{FONT}", fontsize=15, '
            'nodesep=0.35, ranksep=0.3, bgcolor="white"];',
            f' node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=12, color="{BORDER}", '
            'margin="0.15,0.06"];',
            f' edge [fontname="{FONT}", fontsize=11, color="{EDGE}", arrowsize=0.7];',
        ]
        return "\n".join(header + dot.lines + dot.edges + ["}"]) + "\n"


def architecture_dot(spec: ModelSpec, lang: str = "en") -> str:
    """Graphviz DOT source of `spec`'s network, top to bottom, with its words in `lang`."""
    return _Builder(spec, lang).build()


__all__ = ["architecture_dot", "csp_channels", "quote"]
