"""Figures: pictures and samples from shipped or trained weights (``python -m scripts.figures.<name>``)."""
