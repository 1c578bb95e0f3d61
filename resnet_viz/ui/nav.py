"""The app's pages, built on every run (their titles follow the language switch). Each page's module is
imported when the page is first shown: the Draw and Errors pages need torch, the first page should not wait
for it."""
import importlib

import streamlit as st

from .text import t

PAGES = (("lab", ":material/science:"), ("draw", ":material/draw:"), ("errors", ":material/rule:"),
         ("gradients", ":material/ssid_chart:"), ("experiments", ":material/labs:"))


def _show(name: str):
    def show():
        importlib.import_module(f"{__package__}.{name}").page()
    show.__name__ = name
    return show


def pages() -> list:
    return [st.Page(_show(name), title=t(f"nav.{name}"), icon=icon, url_path=name, default=name == "lab")
            for name, icon in PAGES]


def models_note(job, reference: bool) -> None:
    """Above a page drawn with the bundled reference models: what they are, and how to get one's own."""
    if reference:
        t0 = job.train
        st.info(t("ref.models", names=", ".join(m.name for m in job.models), steps=t0.steps, lr=t0.lr,
                  batch=t0.batch_size, seed=t0.seed), icon=":material/inventory_2:")
        link_to_lab()


def link_to_lab() -> None:
    st.page_link(pages()[0], label=t("nav.go_lab"), icon=":material/science:")
