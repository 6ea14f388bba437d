"""Training beyond one run: patient-wise cross-validation, hyperparameter search, experiment tracking, the input
size chosen from the labels, and the study (test split, cv, out-of-fold operating point, the pages).
"""
