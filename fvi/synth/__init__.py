"""Synthetic Vietnamese ID cards: identities, rendering from templates, photographed captures.

Used by training, evaluation and tests only; the serving path never imports it.
"""
