"""The cepage Streamlit UI: talks to the model service over HTTP only."""
