"""The pure core: data, the task, the recipe, training, metrics, the baseline, the gate's rules,
hardware, loading pretrained models, the error type. Nothing here imports click or MLflow, so
all of it is tested without a tracking server (the fast test tier)."""
