"""Figures, pure functions of recorded numbers (no Streamlit, no torch; every text through `t(key)`): a run's
curves and heatmaps (run), looking inside a model (inside), the papers' experiments (experiments), and the
architecture diagram as Graphviz source (diagram).

The package itself imports nothing: plotly loads with the first figure.
"""
