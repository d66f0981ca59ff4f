"""The project's own served text classifier: an MLflow pyfunc logged from this file (MLflow's
models from code: `mlflow.models.set_model` below), with text_classifier.py beside it as its
code. Neither imports anything of `steps`, so a registered version loads wherever MLflow serves
it, whatever the project's layout becomes.

Artifacts: `model.onnx` and `tokenizer` (its files with config.json: the labels), for ONNX
           Runtime; or `checkpoint` (train's folder), for torch in model_config's dtype. Blended
           (model_config's blend_weight above 0): the lexical model, `lexical.joblib` (in the
           checkpoint folder for torch, an artifact of its own for ONNX Runtime).
Takes:   texts (a list, one string, a Series, or the one-column DataFrame MLflow makes of
         `{"inputs": [...]}`, `{"dataframe_split": ...}` ...); for a text-pair task, a DataFrame
         of its two columns (model_config's pair_columns); param batch_size.
Answers: a DataFrame of `label` and `score` (that label's probability), one row per text, in
         input order; with model_config top_k set (None: every class), one column per rank
         instead, each a {"label", "score"} dict, best first. A multi-label model answers `tags`
         instead, each text's list of the tags whose probability reaches their threshold
         (model_config's thresholds), and with param tag_scores each tag's probability as
         score_<tag>; with top_k set it answers as above, a tag's probability its own. Each text is read as the model was
         trained (model_config's max_length, long_text and stride).
"""

import mlflow
import pandas as pd

try:
    import text_classifier  # as served: MLflow puts the model's code folder on sys.path
except ImportError:  # while register logs the model from the project
    from steps.served import text_classifier


class TextClassifier(mlflow.pyfunc.PythonModel):
    """model_config: max_length, long_text, stride (the reading), pair_columns ("" for single
    texts), batch_size, top_k (as the transformers pipeline's), thresholds (a multi-label model's,
    one a tag), dtype (torch) and intra_op_num_threads (ONNX Runtime; 0: one per physical core),
    blend_weight (the lexical model's share of each probability; 0: the encoder alone)."""

    def load_context(self, context):
        self.config = dict(context.model_config)
        artifacts, weight = context.artifacts, self.config.get("blend_weight", 0.0)
        if text_classifier.CHECKPOINT in artifacts:
            self.scorer = text_classifier.checkpoint_scorer(artifacts[text_classifier.CHECKPOINT], self.config,
                                                            self.config["dtype"], weight)
        else:
            self.scorer = text_classifier.onnx_scorer(artifacts[text_classifier.ONNX_GRAPH],
                                                      artifacts[text_classifier.TOKENIZER], self.config,
                                                      self.config["intra_op_num_threads"],
                                                      artifacts.get(text_classifier.LEXICAL, ""), weight)

    # MLflow's pyfunc hands predict a DataFrame (the signature's one string column). Saying so also
    # tells MLflow to take the logged signature rather than infer one from the hint.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        batch_size = (params or {}).get("batch_size") or self.config["batch_size"]
        texts, pairs = text_classifier.texts_of(model_input, self.config.get("pair_columns"))
        probabilities = self.scorer.probabilities(texts, batch_size, pairs)
        if self.scorer.multi_label and self.config["top_k"] == "":
            return text_classifier.tags_answer(probabilities, self.scorer.labels, self.config["thresholds"],
                                               bool((params or {}).get("tag_scores")))
        return text_classifier.answer(probabilities, self.scorer.labels, self.config["top_k"])


mlflow.models.set_model(TextClassifier())
