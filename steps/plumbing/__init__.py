"""The plumbing between the core and MLflow: the step's run and its URIs (tracking), where data
comes from (sources), the options made from the recipe (cli), launching training processes
(launch), resuming a killed training (resumable), scoring a registered model (scoring), MLflow's
evaluation and thresholds (evaluation), and the registry's aliases (promotion). No module here
is an entry point, and none holds the pipeline's logic: that is steps/core."""
