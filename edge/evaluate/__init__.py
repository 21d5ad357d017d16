"""Evaluation commands (``edge-anpr eval ...``): run the node's own stages over labelled data and score them."""
