"""The layer table in words: each row's operation described in the reader's language, and the whole table
as aligned text (the CLI's `summary`), as records (the Lab's table) or as JSON. Torch-free: it reads the
plain rows that models.costs.layer_table computed."""
from .i18n import tr


def op_text(op: dict, lang: str = "en", count: int = 1) -> str:
    """'conv 7×7, 64, stride 2 + BN + ReLU', 'bottleneck [1×1, 64 | 3×3, 64 | 1×1, 256] + 1×1 projection ×3'."""
    def t(key, **kw):
        return tr(lang, f"op.{key}", **kw)

    kind = op["kind"]
    text = t(kind, **{k: v for k, v in op.items() if k != "kind"})
    if op.get("stride", 1) != 1 and kind not in ("maxpool", "avgpool"):
        text += t("stride", s=op["stride"])
    if op.get("bn"):
        text += " + BN"
    if op.get("act"):
        text += " + " + ("ReLU" if op["act"] == "relu" else "tanh")
    if kind in ("basic", "bottleneck") and not op.get("skip"):
        text += t("plain")
    elif kind in ("basic", "bottleneck"):  # a stage's first block changes the shape, the others keep it
        first = count > 1 and op["shortcut"] != "identity"
        text += t(("skip_first_" if first else "skip_") + op["shortcut"])
    if count > 1:
        text += f" ×{count}"
    return text


def shape_text(shape) -> str:
    return "×".join(map(str, shape))


def records(table, lang: str = "en", grouped: bool = True) -> list[dict]:
    """One dict per row (layer, operation, output, params, FLOPs), then a total row."""
    rows = table.grouped() if grouped else table.rows
    out = [{"layer": r.name, "operation": op_text(r.op, lang, r.count), "output": shape_text(r.shape),
            "params": r.params, "flops": r.flops} for r in rows]
    out.append({"layer": tr(lang, "summary.total"), "operation": "", "output": "", "params": table.params,
                "flops": table.flops})
    return out


def as_json(table, grouped: bool = True) -> dict:
    rows = table.grouped() if grouped else table.rows
    return {"model": table.spec.name, "family": table.spec.family, "input": list(table.input_shape),
            "classes": table.classes, "params": table.params, "flops": table.flops,
            "multiply_adds": table.flops // 2,
            "rows": [{"layer": r.name, "op": r.op, "count": r.count, "output": list(r.shape), "params": r.params,
                      "flops": r.flops} for r in rows]}


def si(n: float) -> str:
    """1234567 -> '1.23M': FLOPs as the papers print them."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def as_text(table, lang: str = "en", grouped: bool = True) -> str:
    head = [tr(lang, f"summary.{k}") for k in ("layer", "operation", "output", "params", "flops")]
    body = [[r["layer"], r["operation"], r["output"], f"{r['params']:,}", si(r["flops"])]
            for r in records(table, lang, grouped)]
    widths = [max(_width(row[i]) for row in [head] + body) for i in range(5)]

    def line(row):
        cells = [_pad(c, w, right=i >= 3) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    title = tr(lang, "summary.title", name=table.spec.name, family=table.spec.family,
               input=shape_text(table.input_shape), classes=table.classes)
    footer = tr(lang, "summary.footer", params=f"{table.params:,}", flops=si(table.flops),
                macs=si(table.flops / 2))
    rule = "-" * len(line(head))
    return "\n".join([title, line(head), rule, *map(line, body[:-1]), rule, line(body[-1]), footer]) + "\n"


def _width(text: str) -> int:
    """Display columns: CJK characters take two."""
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap
