"""Looking at a run's mistakes and correcting labels: FiftyOne (fiftyone_inspect.py, the only module that touches
it), the review in Label Studio (label_review.py; label_studio.py its REST client) and the dashboard (app.py, Gradio).
"""
