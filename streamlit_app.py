"""ResNet Lab: `streamlit run streamlit_app.py`."""
import streamlit as st

from resnet_viz.ui.nav import pages
from resnet_viz.ui.text import language_picker

st.set_page_config(page_title="ResNet Lab", page_icon="🧪", layout="wide")
language_picker()
st.navigation(pages()).run()
