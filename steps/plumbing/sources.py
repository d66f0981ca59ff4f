"""Where a table of messages comes from: a local file or folder, a URI MLflow can download
(runs:/, s3://, ...), or a Hugging Face Hub data set; read with data.read_table, with the
MLflow dataset source that names it."""

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.exceptions import MlflowException

from steps.core import data, hub
from steps.plumbing import tracking


def is_remote_uri(dataset: str) -> bool:
    return len(urlparse(dataset).scheme) > 1  # one letter is a Windows drive


def load_raw(dataset: str) -> tuple[pd.DataFrame, object]:
    """The raw table and its MLflow dataset source."""
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
