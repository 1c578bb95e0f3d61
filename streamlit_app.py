"""ResNet Lab: `streamlit run streamlit_app.py`."""
import streamlit as st

from resnet_viz.ui import link
from resnet_viz.ui.nav import pages
from resnet_viz.ui.text import language_picker

# A material icon, not an emoji: checking an emoji loads a 0.35 s table on the first page view.
st.set_page_config(page_title="ResNet Lab", page_icon=":material/science:", layout="wide")
link.read_once()  # a share link's language and classroom mode, before anything is drawn
language_picker()
link.classroom_toggle()
link.follow_box()
link.keep_run()  # a reload on any page finds the session's run
st.navigation(pages()).run()
