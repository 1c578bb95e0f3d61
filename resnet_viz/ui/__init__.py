"""The Streamlit app. The only package that imports streamlit; it never touches tensors."""
