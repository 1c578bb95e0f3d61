"""Both languages are complete: the same keys, the same {placeholders}, no empty text."""
import json
import re
from pathlib import Path

import pytest

from resnet_viz.i18n import LANGUAGES, catalogue, tr

LOCALES = Path(__file__).resolve().parent.parent / "resnet_viz" / "locales"
PLACEHOLDER = re.compile(r"(?<!\{)\{(\w+)[^{}]*\}(?!\})")


def test_catalogues_have_the_same_keys_and_placeholders():
    en, zh = catalogue("en"), catalogue("zh")
    assert set(en) == set(zh), set(en) ^ set(zh)
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(zh[key])), key


def test_every_key_used_in_code_exists():
    code = "\n".join(p.read_text() for p in (LOCALES.parent).rglob("*.py"))
    used = set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", code))
    used |= set(re.findall(r"""LabError\(\s*["']([a-z_]+\.[a-z_.]+)["']""", code))
    used |= set(re.findall(r"""_check\([^"']*["']([a-z_]+\.[a-z_]+)["']""", code, re.S))
    assert used, "the pattern found no keys: the test would pass vacuously"
    missing = sorted(k for k in used if k not in catalogue("en"))
    assert not missing, missing


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_unknown_language_falls_back_to_english(lang):
    assert tr("xx", "btn.train") == catalogue("en")["btn.train"]
    assert tr(lang, "no.such.key") == "no.such.key"
    json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
