"""Evaluation above the product: what finished runs say about people, read through the models that never heard
them (held-out material, trend fidelity, adaptation). It sits above ``inference`` (it scores with the prediction
pipeline) and the runner (it reads run folders), and nothing below imports it."""
