"""The shared answer parser: what it reads out of real-looking model replies."""

import pytest

from lmms_eval_flow.answers import parse_choice, parse_yes_no

DIRECTIONS = {"A": "left", "B": "right", "C": "up", "D": "down"}
SENTENCES = {
    "A": "The red square moves left",
    "B": "The red square moves right",
    "C": "The blue circle appears first",
    "D": "Nothing moves",
}

CHATTY_REPLY = (
    "In the video, the red square starts on the left side of the frame and moves steadily towards the right edge. "
    "Therefore, the correct answer is B."
)

CHOICE_CASES = [
    # Bare letters, with the decorations models put around them.
    ("B", DIRECTIONS, "B"),
    ("(B)", DIRECTIONS, "B"),
    ("B.", DIRECTIONS, "B"),
    ("B)", DIRECTIONS, "B"),
    ("[C]", DIRECTIONS, "C"),
    ("**B**", DIRECTIONS, "B"),
    ("`D`", DIRECTIONS, "D"),
    ('"C"', DIRECTIONS, "C"),
    ("<answer>C</answer>", DIRECTIONS, "C"),
    ("  D\n", DIRECTIONS, "D"),
    ("A", DIRECTIONS, "A"),
    ("A.", DIRECTIONS, "A"),
    ("B. right", DIRECTIONS, "B"),
    ("C) up", DIRECTIONS, "C"),
    ("(D) down", DIRECTIONS, "D"),
    ("A: left", DIRECTIONS, "A"),
    ("B\n\nThe square ends on the right of the frame.", DIRECTIONS, "B"),
    # Declared answers.
    ("Answer: B", DIRECTIONS, "B"),
    ("Answer:C.", DIRECTIONS, "C"),
    ("The answer is B) The red square moves right", SENTENCES, "B"),
    ("The answer is (A) The red square moves left", SENTENCES, "A"),
    ("The answer is: **D. Nothing moves**", SENTENCES, "D"),
    ("The correct option is (d).", DIRECTIONS, "D"),
    ("Best choice: (c)", DIRECTIONS, "C"),
    ("The answer would be option C.", DIRECTIONS, "C"),
    ("The answer to this question is D", DIRECTIONS, "D"),
    ("I think the answer is C.", DIRECTIONS, "C"),
    ("The best answer is: B. right", DIRECTIONS, "B"),
    # Named letters.
    ("Option B", DIRECTIONS, "B"),
    ("option c", DIRECTIONS, "C"),
    ("A is correct.", DIRECTIONS, "A"),
    ("I think it's B.", DIRECTIONS, "B"),
    ("Based on the video, C", DIRECTIONS, "C"),
    # Lower-case letters where nothing else could be meant.
    ("b", DIRECTIONS, "B"),
    ("(b)", DIRECTIONS, "B"),
    ("b) right", DIRECTIONS, "B"),
    ("the answer is c.", DIRECTIONS, "C"),
    ("answer: d because it goes down", DIRECTIONS, "D"),
    # The option's own text, ignoring case and punctuation.
    ("right", DIRECTIONS, "B"),
    ("Right.", DIRECTIONS, "B"),
    ("The square moves to the left.", DIRECTIONS, "A"),
    ("the red square moves RIGHT!", SENTENCES, "B"),
    ("Nothing moves.", SENTENCES, "D"),
    # "A" the article and "I" the pronoun are not letters.
    ("A red square moves to the right.", DIRECTIONS, "B"),
    ("A person is walking.", DIRECTIONS, None),
    ("A ball rolls up the slope.", DIRECTIONS, "C"),
    ("the answer is a red square", DIRECTIONS, None),
    ("I don't know.", DIRECTIONS, None),
    ("I'm not sure.", DIRECTIONS, None),
    # Chatty replies from instruction-tuned models.
    (CHATTY_REPLY, DIRECTIONS, "B"),
    ("Options A and B are wrong; the square moves up, so the answer is C.", DIRECTIONS, "C"),
    ("Looking at the frames, the square moves to the right. Option B is correct.", DIRECTIONS, "B"),
    ("Sure! The answer is **C. up**", DIRECTIONS, "C"),
    # Several options, or none: unparseable, never a default letter.
    ("The answer is A or B", DIRECTIONS, None),
    ("It is either A or B.", DIRECTIONS, None),
    ("B. Unlike A, it moves right.", DIRECTIONS, None),
    ("A. left B. right C. up D. down", DIRECTIONS, None),
    ("The square moves left, then right.", DIRECTIONS, None),
    ("up and left", DIRECTIONS, None),
    ("Answer: E", DIRECTIONS, None),
    ("The object X moves diagonally.", DIRECTIONS, None),
    ("I cannot determine this from the video.", DIRECTIONS, None),
    ("", DIRECTIONS, None),
    ("T-shirt", DIRECTIONS, None),
]


@pytest.mark.parametrize("reply, options, expected", CHOICE_CASES)
def test_parse_choice(reply, options, expected):
    assert parse_choice(reply, options) == expected


def test_parse_choice_returns_the_options_own_key():
    assert parse_choice("b", {"a": "left", "b": "right"}) == "b"


def test_an_option_inside_a_longer_option_does_not_make_it_ambiguous():
    options = {"A": "left", "B": "up and left", "C": "up"}
    assert parse_choice("It moves up and left.", options) == "B"
    assert parse_choice("It moves left.", options) == "A"


def test_options_with_the_same_text_are_ambiguous():
    assert parse_choice("left", {"A": "left", "B": "Left."}) is None


YES_NO_CASES = [
    ("Yes", "yes"),
    ("Yes.", "yes"),
    ("yes, it does", "yes"),
    ("**No**", "no"),
    ("No, it doesn't.", "no"),
    ("No. The square stays still.", "no"),
    ("The answer is no", "no"),
    ("Answer: Yes", "yes"),
    ("True", "yes"),
    ("False.", "no"),
    ("yeah", "yes"),
    ("Nope.", "no"),
    # Not answers.
    ("There is no ball in the video.", None),
    ("Yesterday it rained.", None),
    ("Not really.", None),
    ("I cannot tell from the video.", None),
    ("No. The answer is yes.", None),
    ("", None),
]


@pytest.mark.parametrize("reply, expected", YES_NO_CASES)
def test_parse_yes_no(reply, expected):
    assert parse_yes_no(reply) == expected
