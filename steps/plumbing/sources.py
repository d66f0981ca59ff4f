"""Where a table of messages comes from: a local file or folder, a URI MLflow can download
(runs:/, s3://, ...), or a Hugging Face Hub data set; read with data.read_table, with the
MLflow dataset source that names it."""

import os
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.exceptions import MlflowException

from steps.core import data, hub
from steps.core.errors import PipelineError
from steps.plumbing import tracking


def is_remote_uri(dataset: str) -> bool:
    return len(urlparse(dataset).scheme) > 1  # one letter is a Windows drive


def from_users_folder(dataset: str) -> str:
    """A relative path as the user meant it: `mlflow run` starts the steps in the project's folder,
    but they inherit the shell's PWD, the folder the user ran it from. A path found there (and not
    in the project's folder) is that file's absolute path; anything else is returned as it is."""
    users_folder = os.environ.get("PWD", "")
    if Path(dataset).is_absolute() or Path(dataset).exists() or not users_folder:
        return dataset
    there = Path(users_folder, dataset).expanduser()
    return str(there.resolve()) if there.exists() else dataset


def load_raw(dataset: str) -> tuple[pd.DataFrame, object]:
    """The raw table and its MLflow dataset source; a relative path read from the project's folder
    or, failing that, the folder `mlflow run` was started in."""
    dataset = dataset if is_remote_uri(dataset) else from_users_folder(dataset)
    if not is_remote_uri(dataset) and not hub.looks_like_path(dataset) and Path(dataset).suffix.lower() in (
            data.TABLE_SUFFIXES - {""}):  # a file name, not a Hub id: say where it was looked for
        folders = dict.fromkeys([str(Path.cwd()), os.environ.get("PWD") or str(Path.cwd())])
        raise PipelineError(f"no file {dataset} in {' or '.join(folders)}: pass the file's absolute path, e.g. "
                            f"-P dataset=$PWD/{dataset}")
    if is_remote_uri(dataset):
        local = tracking.download(dataset, "the data set")
        try:  # s3://, gs://, http(s):// ... have MLflow dataset sources; runs:/ has none
            source = resolve_dataset_source(dataset)
        except MlflowException:
            source = local
        return data.read_table(local), source
    if hub.looks_like_path(dataset):
        return data.read_table(dataset), str(Path(dataset).expanduser().resolve())

    import datasets  # the Hub path only: loading `datasets` is slow

    def load_all_splits(name):
        return datasets.concatenate_datasets(list(datasets.load_dataset(name).values()))

    table = hub.load_pretrained(load_all_splits, dataset, "data set", "-P dataset=path/to/SMSSpamCollection")
    return with_class_names(table), HuggingFaceDatasetSource(path=dataset)


def with_class_names(table) -> pd.DataFrame:
    """A Hub data set as a frame, its ClassLabel columns (and lists of them: a multi-label column) as
    the names they stand for (sms_spam's label 0/1 as ham/spam), so that the task's labels are the
    data set's own."""
    import datasets

    frame = table.to_pandas()
    for name, feature in table.features.items():
        if isinstance(feature, datasets.ClassLabel):
            frame[name] = feature.int2str(frame[name].tolist())
        elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):  # multi-label: lists of class ids
            frame[name] = [feature.feature.int2str([int(i) for i in ids]) for ids in frame[name]]
    return frame
