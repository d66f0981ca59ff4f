"""register: log the best checkpoint as an MLflow transformers model and register a version.

Inputs:  checkpoint (URI of train's output), registered_model_name, batch_size and device
         (the served model's inference settings, stored in its model_config), dtype (what the
         weights are cast to when the model loads; auto: bf16 where this machine has it natively),
         serving_format (transformers: the tutorial's model; onnx: the checkpoint exported, fused
         by ONNX Runtime and served by it; onnx-int8: the same with int8 weights).
         Every format reads a text as tokenize did (the task's reading: max_length, long_text).
Logs:    a text-classification pipeline with mlflow.transformers.log_model (signature with
         params, input example, model_config with truncation at the trained max_length,
         torch_dtype, explicit pip requirements, the task from the checkpoint's task.json in the
         model's metadata: it answers the task's class names, id2label from the task); tag
         dtype. With long_text head_tail or chunks or text pairs (which the pipeline cannot read), a
         multi-label task (whose lists of tags its pyfunc cannot answer), a blend (train's lexical
         model at a weight above 0, which the pipeline cannot hold), or with
         serving_format onnx or onnx-int8 instead, the project's own pyfunc model
         (steps/served/model.py: the checkpoint in torch, or in ONNX Runtime), which takes and
         answers what the transformers one does (the same for a text-pair task, whose
         signature names its two columns); a new
         version of registered_model_name with alias `candidate` and tags serving_format and lineage
         (train run, data digest, git commit); card/README.md, the checkpoint's model card with the
         serving added, and the version's description: the card's summary. A failure after
         registering deletes the version again.
Output:  models:/<registered_model_name>/<version>
"""

from importlib.metadata import version
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient
from transformers import pipeline

from steps.core import card, hardware
from steps.core.errors import PipelineError
from steps.core.specs import Serving
from steps.core.task import FILE as TASK_FILE, read_task
from steps.plumbing import contract, tracking
from steps.plumbing import model_card as model_card_store
from steps.plumbing.cli import spec_from, spec_options, summary
from steps.plumbing.scoring import TASK_METADATA
from steps.plumbing.serving import log_served_model
from steps.served.text_classifier import LEXICAL, load_lexical

# The pipeline's own "top_k not given": each text's best class, as `label` and `score`. Stored so that
# a load may override it (MLflow overrides only stored keys) with scoring.CLASS_SCORES; left out
# of the signature, whose defaults every request would send.
ONE_CLASS = {"top_k": ""}
# Explicit: inference would otherwise pin torchvision, which has no CPU wheel here and is unused.
PIP_REQUIREMENTS = [f"{name}=={version(name).split('+')[0]}"
                    for name in ("mlflow", "torch", "transformers", "accelerate")]


def serving_dtype(dtype: str, device: str) -> str:
    """"auto": what the hardware register runs on computes natively (bf16 on CPUs with AMX or
    AVX-512 bf16 and on Ampere or newer GPUs, fp16 on older GPUs, else fp32)."""
    return hardware.pick_precision(dtype, on_cpu=hardware.resolve_device(device) == "cpu")


def checkpoint_task(checkpoint_dir: str):
    """The task train saved beside the weights; a one-line error for a folder that is no checkpoint of train's."""
    missing = [name for name in ("config.json", TASK_FILE) if not (Path(checkpoint_dir) / name).exists()]
    if missing:
        raise PipelineError(f"{checkpoint_dir} holds no model ({' and '.join(missing)} missing): "
                            "pass the output URI of train as checkpoint")
    task = read_task(checkpoint_dir)
    if task.blend_weight:  # the version must answer: its lexical model is there and loads
        lexical = Path(checkpoint_dir) / LEXICAL
        if not lexical.exists():
            raise PipelineError(f"{checkpoint_dir} blends a lexical model at weight {task.blend_weight:g} but holds no "
                                f"{LEXICAL}: pass the whole output of train as checkpoint, or train again")
        try:
            load_lexical(str(lexical))
        except Exception as err:  # whatever unpickling a damaged or foreign file raises
            why = " ".join([type(err).__name__, *str(err).splitlines()[:1]])[:160]
            raise PipelineError(f"cannot load {lexical}, the blend's lexical model ({why}): train again (with "
                                "blend=none to serve the encoder alone)") from None
    return task


def build_pipeline(checkpoint_dir: str, batch_size: int, device: str):
    return pipeline("text-classification", model=checkpoint_dir, tokenizer=checkpoint_dir,
                    batch_size=batch_size, device=hardware.resolve_device(device))


def model_arguments(classifier, task, batch_size: int, device: str, dtype: str) -> dict:
    """How the pipeline is logged, as the tutorial does: example, model_config, and a signature
    inferred from both (an example given with params puts them in the signature, overridable per
    request); and the dtype the weights are cast to when loaded (they are stored as trained, so
    `mlflow.transformers.load_model(uri, torch_dtype=torch.float32)` gets them back exactly).

    `device` is stored as the user set it ("auto" by default): at load time MLflow places the
    model itself (a visible GPU, or MLFLOW_DEFAULT_PREDICTION_DEVICE). The pipeline's tokenizer
    truncates at the max_length the model was trained at (not a request's param: served as trained)."""
    model_config = {"batch_size": batch_size, "device": device}
    truncation = {"truncation": True, "max_length": task.read_as.max_length}
    return {"transformers_model": classifier, "task": "text-classification", "torch_dtype": hardware.DTYPES[dtype],
            "input_example": (list(task.examples), model_config),
            "model_config": {**model_config, **ONE_CLASS, **truncation},
            "pip_requirements": PIP_REQUIREMENTS, "metadata": {TASK_METADATA: task.to_dict()}}


def lineage(checkpoint_uri: str, register_run) -> dict[str, str]:
    """Where the model came from: the train run, its data digest and its git commit."""
    train_tags = tracking.upstream_tags(checkpoint_uri)
    tags = {contract.CHECKPOINT_TAG: checkpoint_uri, contract.REGISTER_RUN_TAG: register_run.info.run_id,
            contract.TRAIN_RUN_TAG: tracking.run_id_of(checkpoint_uri) or "",
            contract.DATA_DIGEST_TAG: train_tags.get(contract.DATA_DIGEST_TAG, ""),
            contract.GIT_COMMIT_TAG: train_tags.get(contract.COMMIT_TAG,
                                                    register_run.data.tags.get(contract.COMMIT_TAG, ""))}
    return {key: value for key, value in tags.items() if value}


def register(model_uri: str, name: str, tags: dict[str, str], model_card, run):
    """A new version with its tags, its description (the card's summary) and the candidate alias, or no
    version at all."""
    version = mlflow.register_model(model_uri, name, tags=tags)
    try:
        MlflowClient().update_model_version(name, version.version, card.summary(
            model_card, name, version.version, "Not validated yet.",
            card.card_page(run.info.experiment_id, run.info.run_id, contract.CARD_FILE)))
        MlflowClient().set_registered_model_alias(name, contract.CANDIDATE_ALIAS, version.version)
    except Exception:
        MlflowClient().delete_model_version(name, version.version)
        raise
    return version


@click.command(help=summary(__doc__))
@click.option("--checkpoint", required=True, help="URI of train's output folder.")
@click.option("--registered-model-name", default="spam-classifier", show_default=True)
@spec_options(Serving)
def main(checkpoint, registered_model_name, **options):
    serving = spec_from(Serving, options)
    serving_format, batch_size, device = serving.serving_format, serving.serving_batch_size, serving.device
    with tracking.step_run() as run:
        tracking.carry_data_digest(checkpoint)
        folder = tracking.download(checkpoint, "the checkpoint")
        task = checkpoint_task(folder)
        dtype = ""  # the ONNX formats' weights are in their format's name
        if serving_format != "transformers":
            model_info = log_served_model(folder, serving_format, task, batch_size)
        else:
            dtype = serving_dtype(serving.serving_dtype, device)
            mlflow.set_tag("dtype", dtype)
            if task.read_as.long_text == "head" and not (task.pair_columns or task.multi_label or task.blend_weight):
                model_info = mlflow.transformers.log_model(
                    name="model",
                    **model_arguments(build_pipeline(folder, batch_size, device), task, batch_size, device, dtype))
            else:  # the pipeline reads one text's head only, answers one label and blends nothing: the checkpoint in torch
                model_info = log_served_model(folder, "torch", task, batch_size, dtype=dtype)
        mlflow.set_tag(contract.FORMAT_TAG, serving_format)
        model_card = card.with_section(card.read_card(folder), "Serving", card.serving_section(
            serving_format, dtype, batch_size, task.blend_weight))
        with model_card_store.writing(f"into run {run.info.run_id}", "register again; no version was registered"):
            mlflow.log_text(str(model_card), contract.CARD_FILE)
        version = register(model_info.model_uri, registered_model_name,
                           {**lineage(checkpoint, mlflow.get_run(run.info.run_id)),
                            contract.FORMAT_TAG: serving_format}, model_card, run)
        served = serving_format + (f", blending TF-IDF at weight {task.blend_weight:g}" if task.blend_weight else "")
        click.echo(f"registered {registered_model_name} version {version.version} ({served}; alias "
                   f"{contract.CANDIDATE_ALIAS})")
        tracking.set_output(f"models:/{registered_model_name}/{version.version}")


if __name__ == "__main__":
    main()
