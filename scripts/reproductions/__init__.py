"""Reproductions: the studies and tables behind the shipped figures (``python -m scripts.reproductions.<name>``)."""
