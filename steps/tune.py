"""tune: search learning rate, batch size, epochs, warmup and weight decay with Optuna.

Inputs:  tokenized (URI of tokenize's output), model, trials, and the recipe's settings it does
         not search (seed, precision, group_by_length, eval_batch_size, device); tune_storage (an
         Optuna RDB URL such as sqlite:///tune.db or postgresql://...; empty: in memory) and
         study_name (empty: one named after the tokenized data and the model).
Logs:    one nested run per trial (its parameters, training curves, the task's validation F1 per epoch,
         and its state: complete or pruned); on this run the best trial's number, parameters
         and validation F1; search/history.png and search/importances.png (Optuna's plots of
         the optimisation history and of the parameters' importance).
Search:  TPE sampler; from the third trial on, a trial is pruned after an epoch whose validation
         F1 is below the median of the earlier trials at that epoch; with early_stopping_patience, a
         trial also stops after that many epochs without a better F1 (and runs patience + 1 to
         patience + 3 epochs). Only the validation split is read: the test split
         stays untouched until validate. With tune_storage, several `tune` processes on any
         machines share one study and stop together once it holds `trials` finished trials.
Output:  runs:/<run id>/best_params.json
"""

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import click
import matplotlib
import mlflow
import optuna
from transformers import TrainerCallback

from steps.core import hub
from steps.core.errors import PipelineError
from steps.core.recipe import SEARCHED, Recipe
from steps.core.training import fine_tune, read_tokenized
from steps.plumbing import tracking
from steps.plumbing.cli import spec_from, spec_options, summary

matplotlib.use("Agg")  # no display on servers


def suggest(trial: optuna.Trial, patience: int) -> dict:
    """The search space (the Recipe's SEARCHED fields): ranges that suit fine-tuning a small BERT-like encoder.
    With early stopping, every trial runs long enough to be stopped (patience + 1 epochs at least)."""
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-4, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
            "epochs": trial.suggest_int("epochs", 1 + patience, 3 + patience),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1)}


class ReportToOptuna(TrainerCallback):
    """Each epoch's validation F1 to the trial; stop the trial when Optuna's pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.trial.report(metrics["eval_f1"], step=round(state.epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation F1 {metrics['eval_f1']:.4f} after epoch {state.epoch:.0f}")


def objective(tokenized, tokenizer, model: str, task, fixed: Recipe, workdir: str):
    """The best validation F1 (the task's) of one trial's fine-tune, trained in a nested run of its own."""
    def run_trial(trial: optuna.Trial) -> float:
        params, pruned = suggest(trial, fixed.early_stopping_patience), None
        with mlflow.start_run(nested=True, run_name=f"trial {trial.number}"):
            mlflow.log_params({**params, "trial_number": trial.number})
            try:
                trainer = fine_tune(tokenized, tokenizer, model, task, str(Path(workdir, str(trial.number))),
                                    dataclasses.replace(fixed, **params), report_to="mlflow",
                                    callbacks=[ReportToOptuna(trial)])
            except optuna.TrialPruned as err:  # a pruned trial is a finished run, not a failed one
                pruned = err
            mlflow.set_tag("trial_state", "pruned" if pruned else "complete")
            if not pruned:
                mlflow.log_metric("best_validation_f1", trainer.state.best_metric)
        if pruned:
            raise pruned
        return trainer.state.best_metric
    return run_trial


def default_study_name(tokenized_uri: str, model: str) -> str:
    """The same data and model give the same study, so processes sharing a storage find each other."""
    return "tune-" + hashlib.sha1(f"{tokenized_uri}|{model}".encode()).hexdigest()[:12]


def log_search_plots(study: optuna.Study) -> None:
    """Optuna's own plots: the optimisation history, and which parameters mattered (given 2+ finished trials)."""
    from optuna.visualization import matplotlib as plots

    mlflow.log_figure(plots.plot_optimization_history(study, target_name="validation F1").figure,
                      "search/history.png")
    if sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 2:
        mlflow.log_figure(plots.plot_param_importances(study, target_name="validation F1").figure,
                          "search/importances.png")


def search(study: optuna.Study, run_trial, trials: int) -> optuna.trial.FrozenTrial:
    """Run trials until the study holds `trials` finished (complete or pruned) ones, whoever ran them."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(run_trial, n_trials=trials, callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)])
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise PipelineError(f"none of the {len(study.trials)} trials finished: raise trials or check the data")
    return study.best_trial


@click.command(help=summary(__doc__))
@click.option("--tokenized", required=True, help="URI of tokenize's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=8, show_default=True,
              help="Finished trials the study should hold (shared by every process on one storage).")
@spec_options(Recipe, exclude=SEARCHED)
@click.option("--tune-storage", default="", help="Optuna RDB storage URL (sqlite:///..., postgresql://...); "
                                                 "empty: in memory, this process alone.")
@click.option("--study-name", default="", help="Empty: named after the tokenized data and the model.")
def main(tokenized, model, trials, tune_storage, study_name, **options):
    fixed = spec_from(Recipe, options)
    with tracking.step_run() as run:
        tracking.carry_data_digest(tokenized)
        folder = Path(tracking.download(tokenized, "the tokenized splits"))
        datasets, tokenizer, task = read_tokenized(folder)
        fixed = fixed.for_task(task.multi_label)
        study_name = study_name or default_study_name(tokenized, model)
        try:
            study = optuna.create_study(study_name=study_name, storage=tune_storage or None, direction="maximize",
                                        sampler=optuna.samplers.TPESampler(seed=fixed.seed),
                                        pruner=optuna.pruners.MedianPruner(n_startup_trials=2), load_if_exists=True)
        except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as err:
            raise PipelineError(f"cannot open the Optuna storage '{tune_storage}' ({str(err).splitlines()[0][:160]}): "
                                "pass an RDB URL such as sqlite:///tune.db, or leave tune_storage empty") from None
        mlflow.set_tag("study_name", study_name)
        with tempfile.TemporaryDirectory() as tmp:
            best = search(study, objective(datasets, tokenizer, model, task, fixed, tmp), trials)
        mlflow.log_params({f"best_{key}": value for key, value in best.params.items()})
        mlflow.log_metric("best_validation_f1", best.value)
        mlflow.set_tag("best_trial_number", str(best.number))
        log_search_plots(study)
        mlflow.log_dict(best.params, "best_params.json")
        click.echo(f"best of {len(study.trials)} trials: trial {best.number}, validation F1 {best.value:.4f}, "
                   + ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                               for key, value in best.params.items()))
        tracking.set_output(tracking.artifact_uri(run, "best_params.json"))


if __name__ == "__main__":
    main()
