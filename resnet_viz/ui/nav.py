"""The app's pages, built on every run (their titles follow the language switch)."""
import streamlit as st

from .text import t


def pages() -> list:
    from . import draw, errors, gradients, lab  # the pages import this module for their links
    return [
        st.Page(lab.page, title=t("nav.lab"), icon=":material/science:", url_path="lab", default=True),
        st.Page(draw.page, title=t("nav.draw"), icon=":material/draw:", url_path="draw"),
        st.Page(errors.page, title=t("nav.errors"), icon=":material/rule:", url_path="errors"),
        st.Page(gradients.page, title=t("nav.gradients"), icon=":material/ssid_chart:", url_path="gradients"),
    ]


def link_to_lab() -> None:
    st.page_link(pages()[0], label=t("nav.go_lab"), icon=":material/science:")
