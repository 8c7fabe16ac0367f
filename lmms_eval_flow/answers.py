"""Read the chosen option, a yes/no, or a short free answer out of a model's reply.

Every flow task scores through this module, so a sparse attention regime is never rewarded
or punished by a parser quirk. The parsers are conservative: a reply that names no option,
or several, parses to ``None`` and is scored wrong. They never fall back to a default letter,
which would hand a free point to whichever option is usually "A".

Before anything else a reply loses its reasoning: ``<think>...</think>`` (also ``<thinking>``
and ``<reasoning>``) blocks are dropped, an unterminated block is dropped to the end (the
model ran out of tokens before answering), and text before a closing tag with no opening one
(the chat template opened the block) is dropped too.

``parse_choice`` looks for evidence from the strongest kind to the weakest and stops at
the first kind that says anything:

1. a declared answer: "Answer: B", "the correct option is (c)", "The answer is B) ...",
   "The best caption is Caption B"; a chatty reply that ends "... so the answer is B" counts
   even if it discussed A;
2. option keys named anywhere: "B", "(B)", "B.", "b) left", "**B**", "B is correct",
   "Option B", "Caption A: ..."; naming two ("B, or maybe C") is ambiguous;
3. the text of an option itself: "the square moves left".

Option keys are single letters ("A".."Z") or single digits ("1".."9", as in TempCompass's
"Option 1"/"Option 2" captions). Lower-case letters count only where they cannot be ordinary
text (after "answer is", in brackets, at the very start followed by ")" or "."), and digits
only in those places too, never loose in a sentence ("2 people"). "A" and "I" are English
words as well as letters, so "A person walks ..." is an article, not option A, while
"A is correct" and "A." are the letter.

Open-ended answers (ActivityNet-QA) are compared after ``normalize_answer``: lower case, no
punctuation, no articles, number words as digits. ``exact_match`` reads a yes/no answer with
``parse_yes_no``; ``token_f1`` is the token-overlap F1 of the two normalised answers (for a
yes/no answer, its exact match).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Letters that are also English words: followed by another word they are that word,
# unless the next word is one that cannot follow an article ("A is correct").
_WORD_LETTERS = {"A", "I"}
_AFTER_LETTER = {"is", "or", "and", "was", "seems", "because", "since", "would", "should", "could", "fits", "matches", "describes", "correctly"}

_REASONING_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|$)", re.IGNORECASE | re.DOTALL)
_OPENED_BEFORE_REPLY = re.compile(r"^.*?</(?:think|thinking|reasoning)>", re.IGNORECASE | re.DOTALL)


def strip_reasoning(reply: str) -> str:
    """The reply without its reasoning blocks (see the module docstring)."""
    text = _REASONING_BLOCK.sub(" ", str(reply))
    return _OPENED_BEFORE_REPLY.sub(" ", text)


@dataclass(frozen=True)
class _Grammar:
    """The patterns that find option keys of one kind (letters or digits) in a reply."""

    declared: re.Pattern
    hedge: re.Pattern
    opening: re.Pattern
    bracketed: re.Pattern
    named: re.Pattern
    standalone: re.Pattern | None  # keys that count anywhere in the text (capital letters)


# Words that introduce an option's key: "Option B", "Caption A", "choice (c)".
_LABEL_WORDS = "option|choice|caption|sentence"
_LABEL = r"(?:" + _LABEL_WORDS + r")"
_LINK = r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be))"


def _grammar(key: str, standalone: str | None) -> _Grammar:
    # A key standing alone: no letter, digit, hyphen or apostrophe on either side ("T-shirt", "I'm").
    alone = r"(?<![\w'’-])(?P<key>" + key + r")(?![\w'’-])"
    return _Grammar(
        declared=re.compile(
            r"\b(?:answer(?:\s+to\s+(?:the|this)\s+question)?" + _LINK + r"?|" + _LABEL + _LINK + r"|" + _LABEL + r"(?=\s*:))"
            r"\s*[:=\-–]?\s*(?:(?:" + _LABEL_WORDS + r"|letter)\s+)?[(\[]?\s*" + alone,
            re.IGNORECASE,
        ),
        # Right after a declared key: "or B", "and (C)", "/ D" make the declaration a hedge.
        hedge=re.compile(r"\s*[)\]]?\s*(?:or|and|/|,)\s*(?:" + _LABEL + r"\s+)?[(\[]?\s*" + alone, re.IGNORECASE),
        opening=re.compile(r"^[(\[]?(?P<key>" + key + r")(?:[)\]]|[.:](?=\s|$)|(?=\s*(?:\n|$)))"),
        bracketed=re.compile(r"[(\[](?P<key>" + key + r")[)\]]"),
        named=re.compile(r"\b" + _LABEL + r"\s+" + alone, re.IGNORECASE),
        standalone=None if standalone is None else re.compile(r"(?<![\w'’-])(?P<key>" + standalone + r")(?![\w'’-])"),
    )


_LETTERS = _grammar("[A-Za-z]", standalone="[A-Z]")
_DIGITS = _grammar("[1-9]", standalone=None)


def parse_choice(reply: str, options: dict[str, str]) -> str | None:
    """The key of ``options`` (key -> option text) that ``reply`` picks, or None.

    Keys are single letters or single digits, all of one kind. None means the reply names
    no option or more than one; callers score it wrong.
    """
    grammar = _grammar_of(options)
    text = _clean(reply)
    keys = {key.upper(): key for key in options}
    declared = _declared_keys(grammar, text)
    if declared:  # a declared key that is no option is an invalid answer, not a hint
        return keys[declared.pop()] if len(declared) == 1 and declared <= keys.keys() else None
    named = _named_keys(grammar, text) & keys.keys()  # stray capitals ("object X") are no answer
    if named:
        return keys[named.pop()] if len(named) == 1 else None
    return _matching_option_text(text, options)


def _grammar_of(options: dict[str, str]) -> _Grammar:
    if options and all(len(key) == 1 and key.isalpha() and key.isascii() for key in options):
        return _LETTERS
    if options and all(len(key) == 1 and key in "123456789" for key in options):
        return _DIGITS
    raise ValueError(f"option keys must be all single letters or all single digits 1-9, got {sorted(options)}")


def _clean(reply: str) -> str:
    """Drop reasoning blocks, markdown emphasis, code ticks, XML-ish tags and wrapping quotes."""
    text = re.sub(r"<[^<>]*>", " ", strip_reasoning(reply))
    text = re.sub(r"[*`]", "", text)
    return text.strip().strip("\"'“”‘’").strip()


def _is_key(text: str, match: re.Match) -> bool:
    """False where a matched "A"/"I" is really the article or pronoun ("A person ...")."""
    if match.group("key").upper() not in _WORD_LETTERS:
        return True
    next_word = re.match(r"[ \t]+([A-Za-z]+)", text[match.end("key") :])
    return next_word is None or next_word.group(1).lower() in _AFTER_LETTER


def _declared_keys(grammar: _Grammar, text: str) -> set[str]:
    keys = set()
    for match in grammar.declared.finditer(text):
        if _is_key(text, match):
            keys.add(match.group("key").upper())
            hedge = grammar.hedge.match(text, match.end())
            if hedge and _is_key(text, hedge):
                keys.add(hedge.group("key").upper())
    return keys


def _named_keys(grammar: _Grammar, text: str) -> set[str]:
    """Every key the reply names: capitals standing alone, "(b)", "option b", "b) ..."."""
    opening = [m for m in [grammar.opening.match(text)] if m]
    standalone = [] if grammar.standalone is None else list(grammar.standalone.finditer(text))
    matches = [*opening, *standalone, *grammar.bracketed.finditer(text), *grammar.named.finditer(text)]
    return {m.group("key").upper() for m in matches if _is_key(text, m)}


def _words(text: str) -> str:
    """Lower-case words separated by single spaces, punctuation dropped."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _matching_option_text(text: str, options: dict[str, str]) -> str | None:
    """The one option whose text the reply contains, ignoring case and punctuation.

    An option whose text lies inside another matched option's text ("left" inside
    "up and left") does not count against it.
    """
    reply = f" {_words(text)} "
    padded = {key: f" {_words(value)} " for key, value in options.items() if _words(value)}
    found = {key: words for key, words in padded.items() if words in reply}
    found = [key for key, words in found.items() if not any(words != other and words in other for other in found.values())]
    return found[0] if len(found) == 1 else None


_YES_NO = {"yes": "yes", "yeah": "yes", "yep": "yes", "true": "yes", "no": "no", "nope": "no", "false": "no"}
_YES_NO_WORD = r"(?P<word>" + "|".join(_YES_NO) + r")\b"
_YES_NO_OPENING = re.compile(r"^" + _YES_NO_WORD, re.IGNORECASE)
_YES_NO_DECLARED = re.compile(r"\banswer\b" + _LINK + r"?\s*[:=\-–]?\s*" + _YES_NO_WORD, re.IGNORECASE)


def parse_yes_no(reply: str) -> str | None:
    """Read "yes" or "no" from a reply that opens with or declares one, else None.

    Accepted: "Yes.", "no, it does not", "Answer: yes", "The answer is no", and
    "True"/"False" (read as yes/no: models asked a yes/no question sometimes answer that
    way). A "no" inside a sentence ("there is no ball") is not an answer, so it is not
    read as one; a reply that gives both ("No. The answer is yes.") is None.
    """
    text = _clean(reply)
    matches = [*_YES_NO_DECLARED.finditer(text), *[m for m in [_YES_NO_OPENING.match(text)] if m]]
    answers = {_YES_NO[m.group("word").lower()] for m in matches}
    return answers.pop() if len(answers) == 1 else None


_NUMBER_WORDS = {
    word: str(number)
    for number, word in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ))
}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """A short answer in canonical form: "The two RED cars." -> "2 red cars"."""
    words = re.findall(r"[a-z0-9]+", _clean(text).lower())
    return " ".join(_NUMBER_WORDS.get(word, word) for word in words if word not in _ARTICLES)


def exact_match(reply: str, answer: str) -> bool:
    """Whether the reply gives the answer: yes/no answers by ``parse_yes_no``, others normalised."""
    gold = normalize_answer(answer)
    if gold in ("yes", "no"):
        return parse_yes_no(reply) == gold
    return normalize_answer(reply) == gold


def token_f1(reply: str, answer: str) -> float:
    """F1 of the shared words of the normalised reply and answer (0 when either is empty).

    A yes/no answer has one word that matters: its F1 is its ``exact_match``, so "Yes, the
    man is indoors." scores 1 for "yes" rather than 0.4.
    """
    if normalize_answer(answer) in ("yes", "no"):
        return float(exact_match(reply, answer))
    predicted, gold = normalize_answer(reply).split(), normalize_answer(answer).split()
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)
