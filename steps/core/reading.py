"""How a text is read into the model, declared once: how many tokens at once, and what of a
longer text (steps/served/text_classifier.py does the reading). tokenize takes a Reading and writes
it into the task file; train, register and every served format read it from there, so the
model is served exactly as it was trained."""

from dataclasses import dataclass

from steps.core.errors import PipelineError
from steps.core.specs import setting
from steps.served.text_classifier import LONG_TEXT


@dataclass(frozen=True)
class Reading:
    max_length: int = setting(128, "Tokens the model reads of a text at once (each window's, with chunks).", min=8)
    long_text: str = setting("head", "What the model reads of a longer text: head (its first tokens), head_tail "
                             "(its first and last), chunks (all of it, in windows whose answers are averaged).",
                             choices=LONG_TEXT)
    stride: int = setting(32, "chunks: the tokens each window shares with the one before it.", min=0)

    def check(self, special_tokens: int, pair: bool = False) -> None:
        """A one-line error for a reading that cannot work: chunks that would not move forward (the
        stride must leave room for new tokens; a pair's windows run over its second text, the first
        taking up to half the room), or head_tail of a pair."""
        if pair and self.long_text == "head_tail":
            raise PipelineError("long_text=head_tail reads single texts: set long_text to head or chunks for a "
                                "text pair")
        room = self.max_length - special_tokens
        room -= room // 2 if pair else 0
        if self.long_text == "chunks" and self.stride >= room:
            raise PipelineError(f"stride={self.stride} is not smaller than the {room} text tokens of a "
                                f"max_length={self.max_length} window: lower stride (e.g. {room // 4}) or raise "
                                "max_length")
