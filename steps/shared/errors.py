"""TEMPORARY re-export while the core moves (to be removed): use steps.core.errors."""
from steps.core.errors import PipelineError  # noqa: F401
