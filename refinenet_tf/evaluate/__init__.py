"""Evaluation: confusion-matrix metrics, dense CRF, multi-scale prediction, reports."""
