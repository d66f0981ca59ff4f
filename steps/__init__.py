"""The pipeline's entry points, one thin click command each (`python -m steps.<entry point>`),
over two layers: steps.core, the pure logic (no click, no MLflow), and steps.shared, the plumbing
to MLflow, files and processes."""

import logging
import os
import warnings

# Runs before any step module (`python -m steps.X`), so before transformers and datasets load.
# Each step prints its own one-line progress; the libraries' progress bars and load reports
# would bury it. Set these variables to see them again.
for _variable, _quiet in (("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                          ("TRANSFORMERS_VERBOSITY", "error"), ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
    os.environ.setdefault(_variable, _quiet)
# The retry budget of every call to a tracking server (MLflow's own variables; set them to change it).
# MLflow retries a refused or failed call 9 times, waiting 0, 4, 8, ... seconds (at most 120) between
# tries: about 8 minutes. That rides out a server's restart, a deploy or a database failover without
# losing an hour of training; a server still gone after that fails the step in one line
# (tracking.step_run). A server that is down when a step starts fails it at once (no retries).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
# pyspark (for predict's Spark engine) warns on import that pandas 3 is not fully supported;
# MLflow imports it in every step that logs a model. predict's tests compare both engines.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


class _Silenced(logging.Filter):
    """Drops MLflow's transformers-flavor warnings that say nothing to this project's users; any other
    warning still shows. Each, and why it says nothing here:"""
    MESSAGES = (
        "The model card could not be retrieved",  # register logs a local checkpoint: it has no Hub card
        "Unable to find license information",     # the same: a local checkpoint names no licence
        # every request sends the signature's batch_size and device, on purpose: no override is news
        "params provided to the `predict` method will override",
    )

    def filter(self, record):
        return not str(record.msg).startswith(self.MESSAGES)


logging.getLogger("mlflow.transformers").addFilter(_Silenced())
