"""Settings <-> URL query parameters, so a link reproduces a lesson (as TensorFlow Playground does).

    ?preset=shortcut_scaling&model=depth:56&model=depth:56,beta:0.5&steps=200&lr=0.1&lang=zh&classroom=1

Only what differs from the preset is written. Reading trusts nothing: a link may have been typed, truncated
or made to break the app. Every value is checked by the same specs the UI uses; what is wrong is dropped
with a message that says which parameter and why, and the rest still applies. Nothing is dropped unsaid: a
setting given twice with different values names the one it keeps (the Lab names the values its inputs
cannot take, ?steps=50000 where its input stops at 5000, where it shows them).
"""
from dataclasses import asdict, dataclass, field, fields, replace
from urllib.parse import quote, unquote

from .config import (
    DEFAULT_FAMILY,
    DEFAULT_PRESET,
    PRESETS,
    LabError,
    ModelSpec,
    TrainSpec,
    check_models,
    field_kind,
    spec_from_dict,
)
from .i18n import LANGUAGES

MAX_VALUE = 500  # characters; a longer value is not a setting
MAX_MODEL_PARAMS = 6
TRAIN_KEYS = tuple(f.name for f in fields(TrainSpec) if f.name != "eval_size")  # eval_size: not a UI setting
BOOL_TEXT = {"1": True, "true": True, "0": False, "false": False}


@dataclass(frozen=True)
class Shared:
    """What a link carries; None for what it leaves to the preset or to the session."""

    preset: str = DEFAULT_PRESET
    train: TrainSpec | None = None
    models: tuple[ModelSpec, ...] | None = None
    lang: str | None = None
    classroom: bool | None = None
    dataset: str | None = None
    problems: list[LabError] = field(default_factory=list)


def to_params(preset: str, train: TrainSpec | None, models, lang: str = "en", classroom: bool = False,
              dataset: str = "mnist-5k") -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {"preset": preset}
    base = PRESETS[preset]
    if train is not None:
        for k in TRAIN_KEYS:
            if getattr(train, k) != getattr(base.train, k):
                params[k] = _text(getattr(train, k))
    if models and tuple(models) != base.models:
        params["model"] = [model_text(m) for m in models]
    if dataset != "mnist-5k":
        params["dataset"] = dataset
    if lang != "en":
        params["lang"] = lang
    if classroom:
        params["classroom"] = "1"
    return params


def model_text(spec: ModelSpec) -> str:
    """'depth:56,skip:0,beta:0.5' or 'family:vgg,depth:16,width:0.5': the fields that differ from the
    family's default model (a derived name and settings that do not apply are left out)."""
    default, values = asdict(ModelSpec(family=spec.family)) | {"name": ""}, asdict(spec)
    if spec.name == spec.default_name():
        values["name"] = ""
    # A name may hold "," or ":": percent-quoted inside the value, so the split below stays simple.
    always = {"depth"} | ({"family"} if spec.family != DEFAULT_FAMILY else set())  # depth: never empty
    return ",".join(f"{k}:{quote(_text(v), safe=' ')}" for k, v in values.items()
                    if v is not None and (v != default[k] or k in always))


def _text(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return f"{v:g}" if isinstance(v, float) else str(v)


def from_params(params, datasets=("mnist-5k",)) -> Shared:
    """Read query parameters (a mapping of str -> str or list of str, as st.query_params.to_dict() or
    parse_qs give them). Never raises: bad values are left out and listed in .problems."""
    problems: list[LabError] = []

    def get(key: str) -> str | None:
        values = params.get(key)
        if isinstance(values, (list, tuple)):
            if len({v.strip() if isinstance(v, str) else v for v in values}) > 1:  # the last one applies: say so
                problems.append(LabError("error.url_repeated", param=key, used=_shown(str(values[-1])),
                                         values=", ".join(_shown(str(v)) for v in values[:4])))
            values = values[-1] if values else None
        if values is None:
            return None
        if not isinstance(values, str) or len(values) > MAX_VALUE:
            problems.append(LabError("error.url_param", param=key, error=LabError("error.url_too_long")))
            return None
        return values.strip()

    preset = get("preset")
    if preset is not None and preset not in PRESETS:
        problems.append(LabError("error.url_param", param="preset", error=LabError("error.url_choice",
                                                                                  choices=", ".join(PRESETS))))
        preset = None
    preset = preset or DEFAULT_PRESET
    train = PRESETS[preset].train
    for key in TRAIN_KEYS:
        text = get(key)
        if text is None:
            continue
        kind = type(getattr(train, key))
        try:
            train = replace(train, **{key: _parse(text, kind)})
        except LabError as e:
            problems.append(LabError("error.url_param", param=key, error=e))
    models = _models(params.get("model"), problems)
    lang = get("lang")
    if lang is not None and lang not in LANGUAGES:
        problems.append(LabError("error.url_param", param="lang", error=LabError("error.url_choice",
                                                                                choices=", ".join(LANGUAGES))))
        lang = None
    classroom = get("classroom")
    if classroom is not None:
        classroom = BOOL_TEXT.get(classroom.lower())
        if classroom is None:
            problems.append(LabError("error.url_param", param="classroom",
                                     error=LabError("error.url_choice", choices="0, 1")))
    dataset = get("dataset")
    if dataset is not None and dataset not in datasets:
        problems.append(LabError("error.url_param", param="dataset",
                                 error=LabError("error.url_choice", choices=", ".join(datasets))))
        dataset = None
    return Shared(preset, train if train != PRESETS[preset].train else None, models, lang, classroom, dataset,
                  problems)


def _parse(text: str, kind):
    """One value as the type its spec field has; a LabError when it cannot be one."""
    try:
        if kind is bool:
            return BOOL_TEXT[text.lower()]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        return text
    except (KeyError, ValueError, OverflowError):
        raise LabError("error.url_value", value=_shown(text)) from None


def _shown(text: str) -> str:
    """A bad value as the message quotes it: short, and unable to leave its `code` span (no link, no HTML)."""
    return text[:40].replace("`", "'").replace("\n", " ")


def _models(values, problems: list) -> tuple[ModelSpec, ...] | None:
    if values is None:
        return None
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        return None
    if len(values) > MAX_MODEL_PARAMS:
        problems.append(LabError("error.url_param", param="model",
                                 error=LabError("error.model_count", n=len(values), lo=1, hi=MAX_MODEL_PARAMS)))
        return None
    kinds = {f.name: field_kind(ModelSpec, f.name) for f in fields(ModelSpec)}  # int, float, bool or str
    specs = []
    try:
        for text in values:
            if not isinstance(text, str) or len(text) > MAX_VALUE:
                raise LabError("error.url_too_long")
            row = {}
            for part in filter(None, text.split(",")):
                key, sep, value = part.partition(":")
                key = key.strip()
                if not sep or key not in kinds:
                    raise LabError("error.url_value", value=_shown(part))
                row[key] = _parse(unquote(value.strip()), kinds[key])
            specs.append(spec_from_dict(ModelSpec, row))
        return check_models(specs)
    except LabError as e:
        problems.append(LabError("error.url_param", param="model", error=e))
        return None
