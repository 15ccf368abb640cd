"""Maintenance: regenerate the docs pages, update and re-store the manifests
(``python -m scripts.maintenance.<name>``)."""
