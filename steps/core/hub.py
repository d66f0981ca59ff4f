"""Loading from a local folder or the Hugging Face Hub, with a clear error offline."""

from pathlib import Path

from steps.core.errors import PipelineError

# The tutorial's data set and model, by the ids the Hub serves them under (the bare
# `sms_spam` and `distilbert-base-uncased` only resolve through redirects).
DEFAULT_DATASET = "ucirvine/sms_spam"
DEFAULT_MODEL = "distilbert/distilbert-base-uncased"


def looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else that names the file system is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists()


def load_pretrained(loader, name: str, what: str, local_hint: str = "-P model=/path/to/model_folder"):
    """`loader(name)` for a local folder or a Hub id; a one-line error when neither works."""
    if looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise PipelineError(f"{what} folder {name} does not exist: pass a folder saved with "
                                "save_pretrained (config.json, weights, tokenizer files)")
        name = str(path)
    try:
        return loader(name)
    except OSError as err:
        if looks_like_path(name):
            raise PipelineError(f"cannot load a {what} from {name} ({str(err).splitlines()[0][:160]}): "
                                "pass a folder saved with save_pretrained") from None
        raise PipelineError(f"cannot load {what} '{name}' from the Hugging Face Hub (offline, or no such id): "
                            f"pass a local path instead, e.g. {local_hint}") from None
