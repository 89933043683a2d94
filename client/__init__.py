"""Command-line client of the served fvi_ensemble, and the drawing helpers it shares with bench/."""
