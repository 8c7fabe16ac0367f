"""Read the chosen option, a yes/no, or a short free answer out of a model's reply.

Every flow task scores through this module, so a sparse attention regime is never rewarded
or punished by a parser quirk. The parsers are conservative: a reply that names no option,
or several, parses to ``None`` and is scored wrong. They never fall back to a default letter,
which would hand a free point to whichever option is usually "A".

Before anything else a reply loses its reasoning: ``<think>...</think>`` (also ``<thinking>``
and ``<reasoning>``) blocks are dropped, an unterminated block is dropped to the end (the
model ran out of tokens before answering: ``cut_off_in_reasoning``, which the tasks report as
``truncated``), and text before a closing tag with no opening one (the chat template opened the
block) is dropped too.

``parse_choice`` looks for evidence from the strongest kind to the weakest and stops at
the first kind that says anything:

1. a declared answer: "Answer: B", "the correct option is (c)", "The answer is B) ...",
   "The best caption is Caption B", "答案是B", "选项D。"; a chatty reply that ends "... so the
   answer is B" counts even if it discussed A;
2. option keys named anywhere: "B", "(B)", "B.", "b) left", "**B**", "B is correct",
   "Option B", "Caption A: ..."; naming two ("B, or maybe C") is ambiguous, unless all but one
   are named to be rejected ("A is incorrect ...; B is correct.");
3. an option named by its place: "The first option." (only in a reply that rejects nothing);
4. the text of an option itself: "the square moves left", articles and case aside, number
   words read as digits ("One." for an option "1"); failing that, the one option whose text
   the reply's words spell nearly letter for letter, far closer than any other, with no
   negation the option lacks ("The balloon is being inflated." for "Inflating the balloon"
   is not enough; "The ballon is inflated." for "The balloon is inflated" is).

Full-width forms ("Ｂ", "（Ｂ）", "答案：Ｃ") are read as their ASCII counterparts (NFKC).

Option keys are single letters ("A".."Z") or single digits ("1".."9", as in TempCompass's
"Option 1"/"Option 2" captions). Lower-case letters count only where they cannot be ordinary
text (after "answer is", in brackets, at the very start followed by ")" or "."), and digits
only in those places too, never loose in a sentence ("2 people"). "A" and "I" are English
words as well as letters, so "A person walks ..." is an article, not option A, while
"A is correct" and "A." are the letter.

Open-ended answers (ActivityNet-QA) are compared two ways. ``raw_exact_match`` is the official
script's test: the answer character for character. ``exact_match`` compares them after
``normalize_answer``: lower case, no punctuation, no articles, number words as digits; it reads
a yes/no answer with ``parse_yes_no``, which also reads a reply that opens with a plain negation
("Not at all, it gets larger.") as no. ``token_f1`` is the token-overlap F1 of the two
normalised answers (for a yes/no answer, its exact match).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

# Letters that are also English words: followed by another word they are that word,
# unless the next word is one that cannot follow an article ("A is correct").
_WORD_LETTERS = {"A", "I"}
_AFTER_LETTER = {"is", "or", "and", "was", "seems", "because", "since", "would", "should", "could", "fits", "matches", "describes", "correctly"}

_REASONING_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?(?:(</\1>)|$)", re.IGNORECASE | re.DOTALL)
_OPENED_BEFORE_REPLY = re.compile(r"^.*?</(?:think|thinking|reasoning)>", re.IGNORECASE | re.DOTALL)


def strip_reasoning(reply: str) -> str:
    """The reply without its reasoning blocks (see the module docstring)."""
    text = _REASONING_BLOCK.sub(" ", str(reply))
    return _OPENED_BEFORE_REPLY.sub(" ", text)


def cut_off_in_reasoning(reply: str) -> bool:
    """Whether the reply ends inside a reasoning block it opened and never closed: the token budget
    ran out before the answer, which a score of wrong alone would hide."""
    return any(block.group(2) is None for block in _REASONING_BLOCK.finditer(str(reply)))


@dataclass(frozen=True)
class _Grammar:
    """The patterns that find option keys of one kind (letters or digits) in a reply."""

    declared: re.Pattern
    hedge: re.Pattern
    opening: re.Pattern
    bracketed: re.Pattern
    named: re.Pattern
    standalone: re.Pattern | None  # keys that count anywhere in the text (capital letters)
    rejected: tuple[re.Pattern, ...]  # keys named to be rejected: "A is incorrect", "not B", "rule out (C)"


# Words that introduce an option's key: "Option B", "Caption A", "choice (c)".
_LABEL_WORDS = "option|choice|caption|sentence"
_LABEL = r"(?:" + _LABEL_WORDS + r")"
_LINK = r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be))"


# Not part of a word around a key: CJK characters ("答案是B") are no letters of it.
_WORD_CHAR = r"(?:(?![\u3000-\u9fff\uff00-\uffef])[\w'’-])"
# "the answer is" / "option" in Chinese: 答案是, 正确答案为, 选项, 选择.
_CJK_DECLARED = r"(?:(?:正确)?答案(?:是|为|应该是|应为)?|选项|选择)"


def _grammar(key: str, standalone: str | None) -> _Grammar:
    # A key standing alone: no letter, digit, hyphen or apostrophe on either side ("T-shirt", "I'm").
    alone = r"(?<!" + _WORD_CHAR + r")(?P<key>" + key + r")(?!" + _WORD_CHAR + r")"
    return _Grammar(
        declared=re.compile(
            r"(?:\b(?:answer(?:\s+to\s+(?:the|this)\s+question)?" + _LINK + r"?|" + _LABEL + _LINK + r"|" + _LABEL
            + r"(?=\s*:))|" + _CJK_DECLARED + r")"
            r"\s*[:=\-–]?\s*(?:(?:" + _LABEL_WORDS + r"|letter)\s+)?[(\[]?\s*" + alone,
            re.IGNORECASE,
        ),
        # Right after a declared key: "or B", "and (C)", "/ D" make the declaration a hedge.
        hedge=re.compile(r"\s*[)\]]?\s*(?:or|and|/|,|或|和|还是|、|，)\s*(?:" + _LABEL + r"\s+)?[(\[]?\s*" + alone, re.IGNORECASE),
        opening=re.compile(r"^[(\[]?(?P<key>" + key + r")(?:[)\]]|[.:](?=\s|$)|(?=\s*(?:\n|$)))"),
        bracketed=re.compile(r"[(\[](?P<key>" + key + r")[)\]]"),
        named=re.compile(r"\b" + _LABEL + r"\s+" + alone, re.IGNORECASE),
        standalone=None if standalone is None else re.compile(
            r"(?<!" + _WORD_CHAR + r")(?P<key>" + standalone + r")(?!" + _WORD_CHAR + r")"),
        rejected=(
            re.compile(r"\b(?:not|rule\s+out|ruling\s+out|eliminate|excluding|except)\s+(?:" + _LABEL + r"\s+)?[(\[]?\s*"
                       + alone, re.IGNORECASE),
            re.compile(r"(?:" + _LABEL + r"\s+)?[(\[]?" + alone + r"[)\]]?\s*(?:is|are|seems|would\s+be)\s+"
                       r"(?:incorrect|wrong|false|unlikely|ruled\s+out|eliminated|not\s+(?:correct|right|true|the\s+answer))",
                       re.IGNORECASE),
        ),
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
        kept = named - _rejected_keys(grammar, text)
        return keys[kept.pop()] if len(kept) == 1 else None
    by_place = _keys_by_place(text, list(options))
    if by_place:
        return by_place.pop() if len(by_place) == 1 else None
    return _matching_option_text(text, options)


def _grammar_of(options: dict[str, str]) -> _Grammar:
    if options and all(len(key) == 1 and key.isalpha() and key.isascii() for key in options):
        return _LETTERS
    if options and all(len(key) == 1 and key in "123456789" for key in options):
        return _DIGITS
    raise ValueError(f"option keys must be all single letters or all single digits 1-9, got {sorted(options)}")


def _clean(reply: str) -> str:
    """Full-width forms as ASCII; drop reasoning blocks, markdown emphasis, code ticks, XML-ish
    tags and wrapping quotes."""
    text = re.sub(r"<[^<>]*>", " ", strip_reasoning(unicodedata.normalize("NFKC", str(reply))))
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


def _rejected_keys(grammar: _Grammar, text: str) -> set[str]:
    return {m.group("key").upper() for pattern in grammar.rejected for m in pattern.finditer(text) if _is_key(text, m)}


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
_BY_PLACE = re.compile(r"\b(?P<place>" + "|".join(_ORDINALS) + r"|last)\s+(?:" + _LABEL_WORDS + r"|answer)\b",
                       re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor|incorrect|wrong|isn't|aren't|doesn't|don't|cannot|can't)\b",
                       re.IGNORECASE)


_PLACE_WORD = re.compile(r"\b(?:" + "|".join(_ORDINALS) + r"|last)\b", re.IGNORECASE)


def _keys_by_place(text: str, keys: list[str]) -> set[str]:
    """Options named by their place ("the second option"), in a reply that rejects nothing; once
    one is, every place word counts ("the first or the second option" names two)."""
    if _NEGATION.search(text) or not _BY_PLACE.search(text):
        return set()
    places = {m.group(0).lower() for m in _PLACE_WORD.finditer(text)}
    index = {place: i for i, place in enumerate(_ORDINALS)} | {"last": len(keys) - 1}
    return {keys[index[place]] for place in places if index[place] < len(keys)}


def _words(text: str) -> str:
    """Lower-case words separated by single spaces: punctuation and articles dropped, number
    words as digits ("Three times." -> "3 times")."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return " ".join(_NUMBER_WORDS.get(word, word) for word in words if word not in _ARTICLES)


# How close a reply must spell an option (difflib's ratio of their words), and how much closer
# than any other option, to be read as that option.
_CLOSE, _MARGIN = 0.9, 0.1


def _named_apart(words: str, reply: str, matched) -> bool:
    """Whether ``words`` occur in ``reply`` outside every longer matched option that holds them."""
    for other in matched:
        if other != words and words in other:
            reply = reply.replace(other, " | ")
    return words in reply


def _matching_option_text(text: str, options: dict[str, str]) -> str | None:
    """The one option whose text the reply contains (see ``_words``), else the one it spells
    nearly letter for letter (``_CLOSE``, ``_MARGIN``) with no negation the option lacks.

    An option whose text lies inside another matched option's text ("left" inside
    "up and left") does not count against it, unless the reply also names it apart.
    """
    reply = f" {_words(text)} "
    padded = {key: f" {_words(value)} " for key, value in options.items() if _words(value)}
    found = {key: words for key, words in padded.items() if words in reply}
    found = [key for key, words in found.items() if _named_apart(words, reply, found.values())]
    if found:
        return found[0] if len(found) == 1 else None
    closeness = sorted(((SequenceMatcher(None, reply.strip(), words.strip()).ratio(), key)
                        for key, words in padded.items()), reverse=True)
    if not closeness or closeness[0][0] < _CLOSE or (len(closeness) > 1 and closeness[0][0] - closeness[1][0] < _MARGIN):
        return None
    key = closeness[0][1]
    negated = bool(_NEGATION.search(text)) and not _NEGATION.search(options[key])
    return None if negated else key


_YES_NO = {"yes": "yes", "yeah": "yes", "yep": "yes", "true": "yes", "no": "no", "nope": "no", "false": "no"}
_YES_NO_WORD = r"(?P<word>" + "|".join(_YES_NO) + r")\b"
_YES_NO_OPENING = re.compile(r"^" + _YES_NO_WORD, re.IGNORECASE)
# A reply that opens with a plain negation answers no: "Not at all, it gets larger.", "Never.",
# "Definitely not." ("Not sure" and "Not the ..." are no answer).
_NEGATION_OPENING = re.compile(r"^(?:(?:certainly|definitely|absolutely|of\s+course)\s+not|not\s+at\s+all|not\s+really"
                               r"|never|not(?=\s*[,.;!]|\s*$))\b", re.IGNORECASE)
_YES_NO_DECLARED = re.compile(r"\banswer\b" + _LINK + r"?\s*[:=\-–]?\s*" + _YES_NO_WORD, re.IGNORECASE)


def parse_yes_no(reply: str) -> str | None:
    """Read "yes" or "no" from a reply that opens with or declares one, else None.

    Accepted: "Yes.", "no, it does not", "Answer: yes", "The answer is no", and
    "True"/"False" (read as yes/no: models asked a yes/no question sometimes answer that
    way), and an opening negation ("Not at all, it gets larger.", "Never.") as no. A "no"
    inside a sentence ("there is no ball") is not an answer, so it is not read as one; a reply
    that gives both ("No. The answer is yes.") is None.
    """
    text = _clean(reply)
    matches = [*_YES_NO_DECLARED.finditer(text), *[m for m in [_YES_NO_OPENING.match(text)] if m]]
    answers = {_YES_NO[m.group("word").lower()] for m in matches}
    if _NEGATION_OPENING.match(text):
        answers.add("no")
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


def raw_exact_match(reply: str, answer: str) -> bool:
    """ActivityNet-QA's official test: the reply, less its reasoning and the white space around it,
    is the answer exactly ("Dancing." is not "dancing")."""
    return strip_reasoning(reply).strip() == answer


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
