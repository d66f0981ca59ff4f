"""Data and a model the tests make themselves: SMS-like messages and a tiny BERT."""

import random
from pathlib import Path

NAMES = ["john", "ringo", "paul", "george", "anna", "maria", "tom", "lucy", "sam", "kate"]
THINGS = ["lunch", "the song", "the project", "dinner", "the report", "coffee", "the match", "the meeting"]
WHEN = ["tomorrow", "tonight", "later", "on monday", "next week", "after work", "this weekend"]
PLACES = ["home", "the office", "the station", "the studio", "the pub", "school"]
PRIZES = ["cash prize", "holiday", "new phone", "gift card", "car", "million dollars"]

HAM = [
    "{name}, are we still on for {thing} {when}?",
    "Can you call me when you get to {place}? {name} is waiting",
    "I'll be at {place} {when}, see you there",
    "Did {name} finish {thing} yet? Let me know {when}",
    "Thanks for {thing}, {name}! Talk {when}.",
    "I have a question about {thing}: can {name} and {name2} work on it together {when}?",
    "Do we need to get {name} involved in {thing}, or do you think they got this?",
    "Sorry I missed your call, I was at {place}. Ring me {when}",
]
SPAM = [
    "WINNER! You have won a {prize}. Click HERE to claim now!",
    "URGENT: claim your FREE {prize} now, txt WIN to {number}",
    "Want to make MILLIONS with no effort? Click HERE now! Guaranteed {prize}!",
    "Congratulations! You were selected for a {prize}. Call {number} now to claim",
    "FREE entry to win a {prize}! Text CLAIM to {number}. Don't miss out, be a winner!",
    "Get rich instantly: {prize} guaranteed, click HERE, offer ends {when}!",
]


def messages(n_ham: int = 140, n_spam: int = 60, repeats: int = 5, seed: int = 0) -> list[tuple[str, str]]:
    """(label, text) pairs; the first `repeats` messages occur twice, as in the real data."""
    rng = random.Random(seed)

    def fill(template):
        name, name2 = rng.sample(NAMES, 2)
        return template.format(name=name.capitalize(), name2=name2.capitalize(), thing=rng.choice(THINGS),
                               when=rng.choice(WHEN), place=rng.choice(PLACES), prize=rng.choice(PRIZES),
                               number=rng.randint(10000, 99999))

    def unique(templates, label, n):
        texts = set()
        while len(texts) < n:
            texts.add(fill(rng.choice(templates)))
        return [(label, text) for text in sorted(texts)]

    rows = unique(HAM, "ham", n_ham) + unique(SPAM, "spam", n_spam)
    rng.shuffle(rows)
    return rows + rows[:repeats]


def write_uci(path: Path, rows) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows))
    return path


def build_tiny_bert(folder: Path, texts) -> Path:
    """A 2-layer BERT of width 32 and a WordPiece tokenizer trained on `texts`, saved like a Hub model."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, wordpiece.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True)

    torch.manual_seed(0)
    config = BertConfig(vocab_size=wordpiece.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Support tickets of three kinds, for the multi-class tests.
TICKETS = {
    "billing": ["I was charged twice for my {plan} plan this {period}, please refund {amount}",
                "Why is my {period} invoice {amount} higher than my {plan} plan price?",
                "Please update the card on my account, the {plan} payment of {amount} failed",
                "Can I get a receipt for the {amount} charge on my {plan} subscription?"],
    "bug": ["The {feature} page crashes every time I click {button} on my {device}",
            "Error 500 when I open {feature} from the {device} app since {period}",
            "{feature} shows a blank screen after the update, tried {button} and it froze",
            "The {button} button does nothing in {feature} on my {device}"],
    "praise": ["Love the new {feature}, it saves me hours every {period}!",
               "Thanks {agent}, the {feature} tips were brilliant and so quick",
               "Great job on {feature}, my whole team on the {plan} plan is delighted",
               "{agent} was wonderful, best support I have had, thank you!"],
}
TICKET_WORDS = {"plan": ["basic", "pro", "team", "family"], "period": ["month", "week", "quarter", "year"],
                "amount": ["$10", "$25", "$99", "$4.50"], "feature": ["dashboard", "export", "search", "calendar"],
                "button": ["save", "share", "upload", "sync"], "device": ["iPhone", "laptop", "tablet", "Android"],
                "agent": ["Maya", "Omar", "Lena", "Raj"]}


def tickets(per_class: int = 40, seed: int = 1) -> list[tuple[str, str]]:
    """(label, text) pairs: `per_class` distinct tickets of each kind, shuffled."""
    rng = random.Random(seed)
    rows = []
    for label, templates in TICKETS.items():
        texts = set()
        while len(texts) < per_class:
            texts.add(rng.choice(templates).format(**{key: rng.choice(words) for key, words in TICKET_WORDS.items()}))
        rows += [(label, text) for text in sorted(texts)]
    rng.shuffle(rows)
    return rows
