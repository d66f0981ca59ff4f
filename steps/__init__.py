"""The pipeline's entry points, one module each (`python -m steps.<entry point>`); their shared
plumbing is the package steps.shared."""

import os
import warnings

# Runs before any step module (`python -m steps.X`), so before transformers and datasets load.
# Each step prints its own one-line progress; the libraries' progress bars and load reports
# would bury it. Set these variables to see them again.
for _variable, _quiet in (("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                          ("TRANSFORMERS_VERBOSITY", "error"), ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
    os.environ.setdefault(_variable, _quiet)
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
# pyspark (for predict's Spark engine) warns on import that pandas 3 is not fully supported;
# MLflow imports it in every step that logs a model. predict's tests compare both engines.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
