"""Thin HTTP gateway in front of the Triton `fvi_ensemble`: upload handling, error mapping, no models."""
