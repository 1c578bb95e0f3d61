"""ResNet Lab: `streamlit run streamlit_app.py`."""
import streamlit as st

from resnet_viz.ui import lab
from resnet_viz.ui.text import language_picker, t

st.set_page_config(page_title="ResNet Lab", page_icon="🧪", layout="wide")
language_picker()
pages = [st.Page(lab.page, title=t("nav.lab"), icon="🧪", url_path="lab", default=True)]
st.navigation(pages).run()
