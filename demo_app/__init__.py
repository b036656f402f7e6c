"""The Streamlit comparison app: reads manifests and results; owns no benchmark logic."""
