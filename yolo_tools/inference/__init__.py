"""Prediction with a run: which predictor (chosen once: one model, a fold ensemble, sliced inference, a cascade),
with which arguments and post-processing (predictors.py), and each of them (ensemble.py, sliced.py, cascade.py).
"""
