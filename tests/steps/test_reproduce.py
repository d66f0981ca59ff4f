"""reproduce's pieces: its own registered model, local sources, metric comparison."""



from steps import reproduce

def test_reproduction_registers_under_a_model_of_its_own_that_is_deleted(tracking):
    name = reproduce.reproduction_model_name({"registered_model_name": "spam-classifier"}, "abc")
    assert name == "spam-classifier-reproduction-abc"
    with reproduce.registered_model_deleted(tracking, name):
        tracking.create_registered_model(name)
        tracking.create_model_version(name, source="file:///nowhere")
    assert tracking.search_registered_models() == []
    with reproduce.registered_model_deleted(tracking, name):
        pass  # a reproduction that failed before register: nothing to delete, no error


def test_reproduce_makes_paths_of_a_local_source_absolute(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sms.tsv").write_text("ham\thi\n")
    parameters = {"dataset": "data/sms.tsv", "model": "distilbert-base-uncased", "checks": "", "epochs": "3",
                  "tokenized": "runs:/abc/tokenized"}
    assert reproduce.with_absolute_paths(parameters, str(tmp_path)) == {**parameters,
                                                                       "dataset": str(tmp_path / "data" / "sms.tsv")}
    assert reproduce.with_absolute_paths(parameters, "git://127.0.0.1:9418/x.git") == parameters


def test_reproduce_compares_every_test_metric():
    lines, differing = reproduce.compare({"test_f1": 0.9, "test_accuracy": 0.95, "loss": 1.0},
                                         {"test_f1": 0.9, "test_accuracy": 0.94}, tolerance=1e-6)
    assert differing == ["test_accuracy"] and len(lines) == 2 and "(+0.00e+00)" in lines[1]
    assert reproduce.compare({"test_f1": 0.9}, {}, 1e-6)[1] == ["test_f1"]


def test_reproduce_unquotes_what_mlflow_projects_recorded():
    run = type("Run", (), {"data": type("Data", (), {"params": {"a": "''", "b": "'x y'", "c": "0.2", "d": ""}})})
    assert reproduce.recorded_parameters(run) == {"a": "", "b": "x y", "c": "0.2", "d": ""}
