"""The pipeline's entry points, one thin click command each (`python -m steps.<entry point>`),
over two layers: steps.core, the pure logic (no click, no MLflow), and steps.plumbing, the plumbing
to MLflow, files and processes. Importing the package changes nothing: each step sets up its
process first (steps/plumbing/environment.py)."""
