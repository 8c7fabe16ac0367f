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
   are named to be rejected ("A is incorrect ...; B is correct.", "A and B are both wrong; C";
   "Neither A nor B." rejects both and picks nothing);
3. an option named by its place: "The first option." (only in a reply that rejects nothing);
4. the text of an option itself: "the square moves left", articles and case aside, number
   words read as digits ("One." for an option "1"), but not under a negation ("not moving
   up", "left is wrong"; "It moves left, not right." is left) nor beside a word only another
   option has ("throws the cup and it breaks"); failing that, a paraphrase: the reply uses a
   word only one option has, none only another has, and a larger share of that option's words
   than of any other's ("The balloon is inflated." for "The balloon is being inflated", not
   for "... deflated"); failing that, the one option the reply spells nearly letter for
   letter, far closer than any other, with no negation the option lacks ("The ballon pops.").

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


def first_line(reply: str) -> str:
    """The first line of the reply's answer (after its reasoning blocks, white space stripped), all
    that TVBench's evaluation reads of a reply ("remove potential explanation": infer.ipynb of
    daniel-cores/tvbench, as MVBench's); a reply that opens with an explanation picks nothing."""
    return strip_reasoning(reply).strip().split("\n")[0]


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
# What a rejected key is called: "is incorrect", "are both wrong", "is also not correct".
_VERDICT_WRONG = (r"(?:is|are|seems|would\s+be)\s+(?:(?:also|clearly|both|all|definitely|certainly|obviously)\s+)?"
                  r"(?:incorrect|wrong|false|unlikely|ruled\s+out|eliminated|not\s+(?:correct|right|true|the\s+answer))")


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
            re.compile(r"\b(?:not|neither|nor|rule\s+out|ruling\s+out|eliminate|excluding|except)\s+(?:" + _LABEL
                       + r"\s+)?[(\[]?\s*" + alone, re.IGNORECASE),
            re.compile(r"(?:" + _LABEL + r"\s+)?[(\[]?" + alone + r"[)\]]?\s*" + _VERDICT_WRONG, re.IGNORECASE),
            # Every key of a rejected list: "A and B are both wrong", "A, B or C is incorrect".
            re.compile(alone + r"(?=[)\]]?(?:\s*(?:,|and|or|&)\s*(?:" + _LABEL + r"\s+)?[(\[]?" + key + r"[)\]]?)+\s*"
                       + _VERDICT_WRONG + r")", re.IGNORECASE),
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
    """Lower-case words separated by single spaces: punctuation and articles dropped, "n't" as
    "not", number words as digits ("Three times." -> "3 times")."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"n['’]t\b", " not", text.lower()))
    return " ".join(_NUMBER_WORDS.get(word, word) for word in words if word not in _ARTICLES)


@dataclass(frozen=True)
class _Clauses:
    """A text's words (as ``_words``) and the clause each lies in: punctuation and "but" end one."""

    words: list[str]
    clause_of: list[int]

    @classmethod
    def of(cls, text: str) -> _Clauses:
        words, clause_of = [], []
        for index, clause in enumerate(re.split(r"[.,;:!?\n]|\bbut\b", text, flags=re.IGNORECASE)):
            clause_words = _words(clause).split()
            words += clause_words
            clause_of += [index] * len(clause_words)
        return cls(words, clause_of)

    def negator(self, start: int, end: int) -> int | None:
        """Where the word that negates ``words[start:end]`` lies: a negation among the three words
        before them in their clause ("not moving up", "never goes down"), or a rejection right
        after them ("left is wrong"); None when nothing does."""
        for index in range(start - 1, max(start - 4, -1), -1):
            if self.clause_of[index] != self.clause_of[start]:
                break
            if self.words[index] in _NEGATORS:
                return index
        after = " ".join(word for word, clause in zip(self.words[end:end + 4], self.clause_of[end:end + 4])
                         if clause == self.clause_of[end - 1])
        return end if _REJECTED_AFTER.match(after) else None


_NEGATORS = {"not", "no", "never", "neither", "nor", "none", "cannot"}
_REJECTED_AFTER = re.compile(r"(?:is|are|was|seems|would be)(?: (?:also|clearly|both|definitely|certainly))?"
                             r" (?:not|wrong|incorrect|false|unlikely)\b")


@dataclass(frozen=True)
class _Mention:
    """Where a reply spells an option's text, and the word negating it there (None if none)."""

    key: str
    start: int
    end: int
    negator: int | None

    def holds(self, other: _Mention) -> bool:
        """Whether ``other`` is part of this longer mention."""
        return self.start <= other.start and other.end <= self.end and self.end - self.start > other.end - other.start


def _mentions(reply: _Clauses, option_words: dict[str, list[str]]) -> list[_Mention]:
    """Every place the reply spells an option's whole text, but those inside a longer option's
    ("left" in "up and left"), which are part of it."""
    mentions = [_Mention(key, start, start + len(words), reply.negator(start, start + len(words)))
                for key, words in option_words.items()
                for start in range(len(reply.words) - len(words) + 1) if reply.words[start:start + len(words)] == words]
    return [mention for mention in mentions if not any(other.holds(mention) for other in mentions)]


def _asserted(mentions: list[_Mention]) -> set[str]:
    """The options mentioned outside a negation ("It moves left, not right." asserts left). An
    option's own negation that negates another option ("it does not move left") asserts neither."""
    negators = {mention.negator for mention in mentions} - {None}
    return {mention.key for mention in mentions
            if mention.negator is None and not any(mention.start <= index < mention.end for index in negators)}


# Words that say nothing about which option a reply means.
_FUNCTION_WORDS = {
    "is", "are", "was", "were", "be", "being", "been", "am", "it", "its", "he", "she", "they", "them", "his", "her",
    "their", "this", "that", "these", "those", "there", "here", "do", "does", "did", "has", "have", "had", "will",
    "would", "can", "could", "should", "i", "you", "we", "me", "my", "to", "of", "and", "or", "so", "as", "answer",
    "option", "choice", "correct", "think",
}


def _stem(word: str) -> str:
    """A word without its common endings, so "inflates", "inflated" and "inflating" meet."""
    stem = re.sub(r"(?:ing|ed|es|e|s)$", "", word) if len(word) > 3 else word
    stem = re.sub(r"([^aeiou])\1$", r"\1", stem)  # "popping" -> "popp" -> "pop"
    return stem if len(stem) >= 3 else word


def _stems(text: _Clauses, outside: frozenset[int] = frozenset()) -> set[str]:
    """The stems of the words that carry meaning, stand outside a negation and lie at no
    position in ``outside``."""
    return {_stem(word) for index, word in enumerate(text.words)
            if index not in outside and word not in _FUNCTION_WORDS | _NEGATORS and text.negator(index, index + 1) is None}


def _distinctive(stems: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each option's stems that no other option has."""
    return {key: own - set().union(*(other for other_key, other in stems.items() if other_key != key))
            for key, own in stems.items()}


def _paraphrased(reply: set[str], stems: dict[str, set[str]]) -> str | None:
    """The option a reply (its ``_stems``) paraphrases ("The balloon is inflated." for "The
    balloon is being inflated"): the reply uses a word only that option has, and none only
    another has, and a larger share of that option's words than of any other's. Words under a
    negation count for nothing, so "not inflated" paraphrases no option."""
    claimed = [key for key, own in _distinctive(stems).items() if own & reply]
    if len(claimed) != 1:
        return None
    share = {key: len(own & reply) / len(own) if own else 0.0 for key, own in stems.items()}
    key = claimed[0]
    return key if all(share[key] > share[other] for other in stems if other != key) else None


# How close a reply must spell an option (difflib's ratio of their words), and how much closer
# than any other option, to be read as that option.
_CLOSE, _MARGIN = 0.9, 0.1


def _matching_option_text(text: str, options: dict[str, str]) -> str | None:
    """The one option the reply asserts by its whole text (``_asserted``), unless the rest of the
    reply uses a word only another option has ("throws the cup and it breaks") or, for a number,
    another number ("six or seven"); else the one it paraphrases (``_paraphrased``); else the one
    it spells nearly letter for letter (``_CLOSE``, ``_MARGIN``: "The ballon pops") with no
    negation the option lacks. Two options asserted is ambiguous, not a hint for the later steps."""
    reply = _Clauses.of(text)
    option_words = {key: _words(value).split() for key, value in options.items() if _words(value)}
    stems = {key: _stems(_Clauses.of(options[key])) for key in option_words}
    mentions = _mentions(reply, option_words)
    asserted = _asserted(mentions)
    if asserted:
        if len(asserted) > 1:
            return None
        key = asserted.pop()
        rest = _stems(reply, frozenset(index for mention in mentions for index in range(mention.start, mention.end)))
        others = _distinctive(stems)
        counted = "".join(option_words[key]).isdigit() and any(stem.isdigit() for stem in rest)  # "six or seven"
        return None if counted or any(rest & others[other] for other in others if other != key) else key
    paraphrased = _paraphrased(_stems(reply), stems)
    if paraphrased is not None:
        return paraphrased
    spelled = " ".join(reply.words)
    closeness = sorted(((SequenceMatcher(None, spelled, " ".join(words)).ratio(), key)
                        for key, words in option_words.items()), reverse=True)
    if not closeness or closeness[0][0] < _CLOSE or (len(closeness) > 1 and closeness[0][0] - closeness[1][0] < _MARGIN):
        return None
    key = closeness[0][1]
    negated = bool(_NEGATION.search(text)) and not _NEGATION.search(options[key])
    return None if negated else key


_YES_NO = {"yes": "yes", "yeah": "yes", "yep": "yes", "true": "yes", "no": "no", "nope": "no", "false": "no"}
_YES_NO_WORD = r"(?P<word>" + "|".join(_YES_NO) + r")\b"
# "No doubt, ..." and "No wonder ..." open a sentence without answering no.
_YES_NO_OPENING = re.compile(r"^" + _YES_NO_WORD + r"(?!\s+(?:doubt|wonder|question)\b)", re.IGNORECASE)
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
