"""User-visible text, one JSON catalogue per language in resnet_viz/locales/.

The library raises errors with a key and parameters, and the UI and CLI turn them into text here, so both
languages stay complete and the library never hard-codes a sentence a user will read.
"""
import json
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT_LANGUAGE = "en"
_LOCALES = Path(__file__).with_name("locales")


@cache
def catalogue(lang: str) -> dict[str, str]:
    with open(_LOCALES / f"{lang}.json", encoding="utf-8") as f:
        return json.load(f)


def tr(lang: str, key: str, **params) -> str:
    """The text for `key` in `lang`, falling back to English, then to the key itself (a test catches that)."""
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    text = catalogue(lang).get(key) or catalogue(DEFAULT_LANGUAGE).get(key) or key
    return text.format(**params) if params else text


class LabError(ValueError):
    """An error a user can fix, carrying a catalogue key so it can be shown in any language."""

    def __init__(self, key: str, **params):
        self.key, self.params = key, params
        super().__init__(self.text(DEFAULT_LANGUAGE))

    def text(self, lang: str) -> str:
        # A parameter may itself be a LabError (the reason a file was refused): it speaks the same language.
        return tr(lang, self.key, **{k: (v.text(lang) if isinstance(v, LabError) else v)
                                     for k, v in self.params.items()})
