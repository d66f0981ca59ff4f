"""Each step's process set-up (steps/plumbing/environment.py)."""



from steps.plumbing import environment

def test_mlflow_warnings_that_say_nothing_here_are_silenced_and_any_other_shows():
    import logging

    environment.configure()

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("mlflow.transformers")
    logger.addHandler(handler)
    try:
        for message in ("The model card could not be retrieved from the hub due to Repo id must be ...",
                        "Unable to find license information for this model. Please verify ...",
                        "params provided to the `predict` method will override the inference configuration ...",
                        "The params provided to the `predict` method are not valid for pipeline"):
            logger.warning(message)
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == [
        "The params provided to the `predict` method are not valid for pipeline"]
