"""A relative data path as the user meant it: `mlflow run` starts the steps in the project's folder,
so a file named relative to the folder the user ran it from (the shell's PWD, inherited) is read
from there; a file found nowhere is one line naming where it was looked for."""

import pandas as pd
import pytest

from steps.core.errors import PipelineError
from steps.plumbing import sources
from tests.helpers import assert_one_line


def test_a_relative_path_is_read_from_the_folder_mlflow_run_started_in(tmp_path, monkeypatch):
    users, project = tmp_path / "users", tmp_path / "project"
    users.mkdir(), project.mkdir()
    pd.DataFrame({"text": ["hello", "WIN now"], "label": ["ham", "spam"]}).to_csv(users / "data.csv", index=False)
    monkeypatch.chdir(project)  # where the steps run
    monkeypatch.setenv("PWD", str(users))  # the shell's folder, which the steps inherit

    table, source = sources.load_raw("data.csv")
    assert table["text"].tolist() == ["hello", "WIN now"] and source == str(users / "data.csv")

    (project / "data.csv").write_text("text,label\nproject,ham\nfile,spam\n")  # the project's own comes first
    assert sources.load_raw("data.csv")[0]["text"].tolist() == ["project", "file"]


def test_a_file_found_nowhere_names_both_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", "/somewhere/else")
    with pytest.raises(PipelineError) as error:
        sources.load_raw("missing.csv")
    assert_one_line(str(error.value), f"no file missing.csv in {tmp_path} or /somewhere/else",
                    "-P dataset=$PWD/missing.csv")
