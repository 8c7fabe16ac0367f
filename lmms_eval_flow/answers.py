"""Read the chosen option or yes/no out of a model's free-text reply.

Every flow task scores through these two functions, so a sparse attention regime is
never rewarded or punished by a parser quirk. Both are conservative: a reply that names
no option, or several, parses to ``None`` and is scored wrong. They never fall back to a
default letter, which would hand a free point to whichever option is usually "A".

``parse_choice`` looks for evidence from the strongest kind to the weakest and stops at
the first kind that says anything:

1. a declared answer: "Answer: B", "the correct option is (c)", "The answer is B) ...";
   a chatty reply that ends "... so the answer is B" counts even if it discussed A;
2. option letters named anywhere: "B", "(B)", "B.", "b) left", "**B**", "B is correct",
   "Option B"; naming two ("B, or maybe C") is ambiguous;
3. the text of an option itself: "the square moves left".

Lower-case letters count only where they cannot be ordinary text (after "answer is",
in brackets, at the very start followed by ")" or "."). "A" and "I" are English words as
well as letters, so "A person walks ..." is an article, not option A, while
"A is correct" and "A." are the letter.
"""

from __future__ import annotations

import re

# Letters that are also English words: followed by another word they are that word,
# unless the next word is one that cannot follow an article ("A is correct").
_WORD_LETTERS = {"A", "I"}
_AFTER_LETTER = {"is", "or", "and", "was", "seems", "because", "since", "would", "should", "could", "fits", "matches", "describes", "correctly"}

# A letter standing alone: no letter, digit, hyphen or apostrophe on either side ("T-shirt", "I'm").
_LETTER = r"(?<![\w'’-])(?P<letter>[A-Za-z])(?![\w'’-])"
_LINK = r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be))"
_DECLARED = re.compile(
    r"\b(?:answer(?:\s+to\s+(?:the|this)\s+question)?" + _LINK + r"?|(?:option|choice)" + _LINK + r"|(?:option|choice)(?=\s*:))"
    r"\s*[:=\-–]?\s*(?:(?:option|choice|letter)\s+)?[(\[]?\s*" + _LETTER,
    re.IGNORECASE,
)
# Right after a declared letter: "or B", "and (C)", "/ D" make the declaration a hedge.
_HEDGE = re.compile(r"\s*[)\]]?\s*(?:or|and|/|,)\s*(?:(?:option|choice)\s+)?[(\[]?\s*" + _LETTER, re.IGNORECASE)
_OPENING = re.compile(r"^[(\[]?(?P<letter>[A-Za-z])(?:[)\]]|[.:](?=\s|$)|(?=\s*(?:\n|$)))")
_BRACKETED = re.compile(r"[(\[](?P<letter>[A-Za-z])[)\]]")
_NAMED = re.compile(r"\b(?:option|choice)\s+" + _LETTER, re.IGNORECASE)
_CAPITAL = re.compile(r"(?<![\w'’-])(?P<letter>[A-Z])(?![\w'’-])")


def parse_choice(reply: str, options: dict[str, str]) -> str | None:
    """The key of ``options`` (letter -> option text) that ``reply`` picks, or None.

    None means the reply names no option or more than one; callers score it wrong.
    """
    text = _clean(reply)
    keys = {key.upper(): key for key in options}
    declared = _declared_letters(text)
    if declared:  # a declared letter that is no option is an invalid answer, not a hint
        return keys[declared.pop()] if len(declared) == 1 and declared <= keys.keys() else None
    named = _named_letters(text) & keys.keys()  # stray capitals ("object X") are no answer
    if named:
        return keys[named.pop()] if len(named) == 1 else None
    return _matching_option_text(text, options)


def _clean(reply: str) -> str:
    """Drop markdown emphasis, code ticks, XML-ish tags and wrapping quotes."""
    text = re.sub(r"<[^<>]*>", " ", str(reply))
    text = re.sub(r"[*`]", "", text)
    return text.strip().strip("\"'“”‘’").strip()


def _is_letter(text: str, match: re.Match) -> bool:
    """False where a matched "A"/"I" is really the article or pronoun ("A person ...")."""
    if match.group("letter").upper() not in _WORD_LETTERS:
        return True
    next_word = re.match(r"[ \t]+([A-Za-z]+)", text[match.end("letter") :])
    return next_word is None or next_word.group(1).lower() in _AFTER_LETTER


def _declared_letters(text: str) -> set[str]:
    letters = set()
    for match in _DECLARED.finditer(text):
        if _is_letter(text, match):
            letters.add(match.group("letter").upper())
            hedge = _HEDGE.match(text, match.end())
            if hedge and _is_letter(text, hedge):
                letters.add(hedge.group("letter").upper())
    return letters


def _named_letters(text: str) -> set[str]:
    """Every letter the reply names: capitals standing alone, "(b)", "option b", "b) ..."."""
    opening = [m for m in [_OPENING.match(text)] if m]
    matches = [*opening, *_CAPITAL.finditer(text), *_BRACKETED.finditer(text), *_NAMED.finditer(text)]
    return {m.group("letter").upper() for m in matches if _is_letter(text, m)}


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
