import numpy as np, mlflow
from tests.test_onnx import *  # noqa
from tests.test_onnx import every_class

def test_diag(logged, texts, reference):
    p8 = every_class(mlflow.pyfunc.load_model(logged["onnx-int8"][1], model_config={"top_k": None}), texts)
    p32 = every_class(mlflow.pyfunc.load_model(logged["onnx"][1], model_config={"top_k": None}), texts)
    s = np.sort(reference, 1)
    print("\nmargins", np.round(s[:, -1] - s[:, -2], 3))
    print("fp32 maxdiff", np.abs(p32 - reference).max(), "int8 maxdiff", np.abs(p8 - reference).max(), "int8 agree", (p8.argmax(1) == reference.argmax(1)).mean())
    print("labels", np.bincount(reference.argmax(1), minlength=3))
