"""The language switch and `t(key)`: every visible string of the app comes from the catalogues."""
import streamlit as st

from ..i18n import DEFAULT_LANGUAGE, LANGUAGES, tr


def lang() -> str:
    value = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, **params) -> str:
    return tr(lang(), key, **params)


def language_picker() -> None:
    st.sidebar.radio("Language / 语言", list(LANGUAGES), format_func=LANGUAGES.get, key="lang", horizontal=True)
