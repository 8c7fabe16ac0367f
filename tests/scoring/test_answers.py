"""The shared answer parser: what it reads out of real-looking model replies."""

import pytest

from lmms_eval_flow.scoring.answers import (
    cut_off_in_reasoning,
    exact_match,
    normalize_answer,
    parse_choice,
    parse_yes_no,
    raw_exact_match,
    strip_reasoning,
    token_f1,
)

DIRECTIONS = {"A": "left", "B": "right", "C": "up", "D": "down"}
SENTENCES = {
    "A": "The red square moves left",
    "B": "The red square moves right",
    "C": "The blue circle appears first",
    "D": "Nothing moves",
}

# TempCompass's caption matching: labelled captions, keyed by letter or by number.
CAPTIONS = {"A": "The man is dribbling a basketball.", "B": "A man is dunking a basketball."}
NUMBERED = {"1": "The man is moving from right to left.", "2": "The man is moving from left to right."}
BALLOON = {"A": "The balloon is being deflated.", "B": "The balloon is being inflated.", "C": "The balloon pops."}
# TOMATO's counting questions: numbers as options, up to seven of them (A-G).
COUNTS = {"A": "0", "B": "1", "C": "2", "D": "3", "E": "4", "F": "5", "G": "6"}
TOMATO_DIRECTIONS = {"A": "clockwise", "B": "counter-clockwise", "C": "up", "D": "down", "E": "left", "F": "right",
                     "G": "it does not move"}
CUP_ACTIONS = {
    "A": "The person picks up the cup", "B": "The person puts down the cup", "C": "The person drinks from the cup",
    "D": "The person washes the cup", "E": "The person throws the cup", "F": "The person fills the cup",
    "G": "The person breaks the cup",
}
INFLATING = {"A": "Deflating the balloon", "B": "Inflating the balloon", "C": "Popping the balloon"}

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
    # Reasoning blocks are not the answer.
    ("<think>The square moves right, so B.</think>\nA", DIRECTIONS, "A"),
    ("<thinking>A or B?</thinking>Answer: D", DIRECTIONS, "D"),
    ("<reasoning>\nC looks right\n</reasoning>\nC", DIRECTIONS, "C"),
    ("It starts on the left, so not A.</think>\nB", DIRECTIONS, "B"),  # the template opened the block
    ("<think>It could be A or B. Let me check again", DIRECTIONS, None),  # ran out of tokens while thinking
    # Labelled captions.
    ("Caption B", CAPTIONS, "B"),
    ("Caption B: A man is dunking a basketball.", CAPTIONS, "B"),
    ("A man is dunking a basketball.", CAPTIONS, "B"),
    ("Sentence A: The man is dribbling a basketball.", CAPTIONS, "A"),
    ("The best caption is Caption A.", CAPTIONS, "A"),
    ("Caption A or Caption B", CAPTIONS, None),
    ("A man is dribbling.", CAPTIONS, "A"),  # a paraphrase: "dribbling" is A's alone
    # Numbered options: digits count only where a letter in that place would.
    ("Option 2", NUMBERED, "2"),
    ("2", NUMBERED, "2"),
    ("2.", NUMBERED, "2"),
    ("(1)", NUMBERED, "1"),
    ("Option 2: The man is moving from left to right.", NUMBERED, "2"),
    ("The answer is 1.", NUMBERED, "1"),
    ("The man is moving from left to right.", NUMBERED, "2"),
    ("2 men are in the video.", NUMBERED, None),
    ("Option 1 and Option 2", NUMBERED, None),
    ("Answer: 3", NUMBERED, None),
    # The option's text without its letter, articles aside, or nearly spelled.
    ("The balloon is being inflated.", BALLOON, "B"),
    ("balloon being inflated", BALLOON, "B"),  # "inflated" is B's alone, spelled ever so close to A's "deflated"
    ("The ballon is being inflated", BALLOON, "B"),  # a typo, but not in the word that tells the options apart
    ("The balloon is being iflated", BALLOON, None),  # the typo is in that word: as close to A as to B
    ("The ballon pops", BALLOON, "C"),  # a typo: far closer to C than to any other
    ("The balloon is not being inflated.", BALLOON, None),
    ("The balloon is being inflated, or the balloon is being deflated.", BALLOON, None),
    # Letters named while others are rejected.
    ("A is incorrect because the balloon grows; B is correct.", BALLOON, "B"),
    ("Not A. The answer must be B.", BALLOON, "B"),
    ("We can rule out C. B fits best.", BALLOON, "B"),
    ("A is wrong and B is wrong.", BALLOON, None),
    ("A is incorrect.", BALLOON, None),
    ("B is correct, C is also correct.", BALLOON, None),
    # Number words for numeric options, up to seven options.
    ("One.", COUNTS, "B"),
    ("Six", COUNTS, "G"),
    ("The answer is G.", COUNTS, "G"),
    ("(F)", COUNTS, "F"),
    ("3", COUNTS, "D"),
    ("Zero times", COUNTS, "A"),
    ("Two or three.", COUNTS, None),
    ("It does not move.", TOMATO_DIRECTIONS, "G"),
    ("counter-clockwise", TOMATO_DIRECTIONS, "B"),
    ("It rotates clockwise, then counter-clockwise.", TOMATO_DIRECTIONS, None),
    ("G. it does not move", TOMATO_DIRECTIONS, "G"),
    # Full-width and Chinese forms.
    ("答案是B", DIRECTIONS, "B"),
    ("选项D。", DIRECTIONS, "D"),
    ("答案：Ｃ", DIRECTIONS, "C"),
    ("（Ａ）", DIRECTIONS, "A"),
    ("正确答案为F", COUNTS, "F"),
    ("答案是A或B", DIRECTIONS, None),
    ("答案是E", DIRECTIONS, None),
    # An option named by its place.
    ("The first option.", DIRECTIONS, "A"),
    ("I would pick the second option.", BALLOON, "B"),
    ("The last option", COUNTS, "G"),
    ("The first option is not right; the second option is.", BALLOON, None),
    ("The fifth option", DIRECTIONS, None),
    ("The first or the second option.", DIRECTIONS, None),
    ("The seventh option.", CUP_ACTIONS, "G"),
    ("The eighth option", CUP_ACTIONS, None),
    # An option's text paraphrased, without its letter: a word only it has, none only another has.
    ("The balloon is inflated.", BALLOON, "B"),
    ("Inflated.", BALLOON, "B"),
    ("The balloon is being inflated.", INFLATING, "B"),
    ("Someone inflates the balloon.", INFLATING, "B"),
    ("The balloon is inflated, not deflated.", BALLOON, "B"),
    ("The balloon is not being deflated, it is being inflated.", BALLOON, "B"),
    ("The balloon isn't inflated; it pops.", BALLOON, "C"),
    ("He dunks.", CAPTIONS, "B"),
    ("He is drinking.", CUP_ACTIONS, "C"),
    ("The person drank from the cup.", CUP_ACTIONS, "C"),  # "from": only C's
    ("She fills it with water.", CUP_ACTIONS, "F"),
    ("The person breaks it.", CUP_ACTIONS, "G"),
    ("Washing.", CUP_ACTIONS, "D"),
    ("G) The person breaks the cup", CUP_ACTIONS, "G"),
    ("答案是Ｇ", CUP_ACTIONS, "G"),
    # ... and near misses: two options, the wrong one negated, or no option's own word.
    ("The balloon is not inflated.", BALLOON, None),
    ("It was inflated and then it popped.", BALLOON, None),
    ("The balloon gets bigger.", BALLOON, None),
    ("He dribbles and then dunks.", CAPTIONS, None),
    ("He is not dunking.", CAPTIONS, None),
    ("The person picks the cup up and drinks.", CUP_ACTIONS, None),
    ("The person throws the cup and it breaks.", CUP_ACTIONS, None),  # E in full, but "breaks" is G's
    ("The person washes the cup, then fills it.", CUP_ACTIONS, None),
    ("The person doesn't break the cup.", CUP_ACTIONS, None),
    ("The person is holding the cup.", CUP_ACTIONS, None),
    ("Neither filling nor washing.", CUP_ACTIONS, None),
    ("The red square is the first thing to appear.", SENTENCES, None),  # as much of A and B as of C
    ("Answer: H", CUP_ACTIONS, None),
    ("None of the options.", DIRECTIONS, None),
    ("None of the above", CUP_ACTIONS, None),
    # An option's text under a negation is rejected, not chosen.
    ("It moves left, not right.", DIRECTIONS, "A"),
    ("Not left but right.", DIRECTIONS, "B"),
    ("It doesn't go up; it goes down.", DIRECTIONS, "D"),
    ("No, it moves left.", DIRECTIONS, "A"),
    ("It is not moving up.", DIRECTIONS, None),
    ("Not left.", DIRECTIONS, None),
    ("Left is wrong.", DIRECTIONS, None),
    ("There is no movement to the left.", DIRECTIONS, None),
    ("It doesn't move at all.", TOMATO_DIRECTIONS, "G"),
    ("It moves to the right.", TOMATO_DIRECTIONS, "F"),
    ("It does not move left.", TOMATO_DIRECTIONS, None),  # G's "not" negates E: neither
    ("It is not moving up.", TOMATO_DIRECTIONS, None),
    ("Six times.", COUNTS, "G"),
    ("It happens five times, not six.", COUNTS, "F"),
    ("Six or seven.", COUNTS, None),  # seven is no option, but the reply hedges
    ("Seven", COUNTS, None),
    ("Not one.", COUNTS, None),
    # More letters named to be rejected.
    ("Neither A nor B.", DIRECTIONS, None),
    ("A and B are both wrong; C is correct.", DIRECTIONS, "C"),
    ("A is incorrect because it moves up; B is also incorrect; C is correct.", DIRECTIONS, "C"),
    ("A and B are wrong.", DIRECTIONS, None),
    ("F is wrong; G is correct.", CUP_ACTIONS, "G"),
    ("Ａ is incorrect; Ｂ is correct.", BALLOON, "B"),
]


@pytest.mark.parametrize("reply, options, expected", CHOICE_CASES)
def test_parse_choice(reply, options, expected):
    assert parse_choice(reply, options) == expected


def test_no_reply_in_the_table_is_credited_with_an_option_it_does_not_pick():
    """The false-credit count: a reply parsed to an option other than the one it picks (or to
    any option, when it picks none) scores a point a regime did not earn. It must stay zero."""
    false_credits = [(reply, expected, parsed) for reply, options, expected in CHOICE_CASES
                     if (parsed := parse_choice(reply, options)) is not None and parsed != expected]
    false_yes_no = [(reply, expected, parsed) for reply, expected in YES_NO_CASES
                    if (parsed := parse_yes_no(reply)) is not None and parsed != expected]
    assert (false_credits, false_yes_no) == ([], [])


@pytest.mark.parametrize("options", [DIRECTIONS, BALLOON, NUMBERED, COUNTS, CUP_ACTIONS],
                         ids=["4 letters", "3 letters", "2 digits", "7 numbers", "7 actions"])
def test_a_reply_that_picks_nothing_gets_no_letter(options):
    for reply in ("", "I cannot tell from the video.", "None of the options.", "All of them."):
        assert parse_choice(reply, options) is None


def test_parse_choice_returns_the_options_own_key():
    assert parse_choice("b", {"a": "left", "b": "right"}) == "b"


def test_an_option_inside_a_longer_option_does_not_make_it_ambiguous():
    options = {"A": "left", "B": "up and left", "C": "up"}
    assert parse_choice("It moves up and left.", options) == "B"
    assert parse_choice("It moves left.", options) == "A"


def test_options_with_the_same_text_are_ambiguous():
    assert parse_choice("left", {"A": "left", "B": "Left."}) is None


def test_option_keys_must_be_of_one_kind():
    with pytest.raises(ValueError, match="all single letters or all single digits"):
        parse_choice("A", {"A": "left", "2": "right"})
    with pytest.raises(ValueError, match="all single letters or all single digits"):
        parse_choice("A", {"AB": "left"})


def test_strip_reasoning_keeps_the_answer_after_the_block():
    assert strip_reasoning("<think>\nThe ball is red.\n</think>\n\nRed").strip() == "Red"
    assert strip_reasoning("Red").strip() == "Red"


@pytest.mark.parametrize("reply, cut_off", [
    ("<think>let me see ... ", True),  # the budget ran out while thinking
    ("<THINKING>A or B", True),
    ("<think>a</think>B<think>but then again", True),  # a second block left open
    ("<think>The square moves right.</think>\nB", False),
    ("<reasoning>C</reasoning>C", False),
    ("It starts on the left.</think>\nB", False),  # the template opened the block, and it was closed
    ("B", False),
])
def test_a_reply_cut_off_inside_its_reasoning_is_told_apart(reply, cut_off):
    assert cut_off_in_reasoning(reply) is cut_off


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
    ("Not really.", "no"),
    ("I cannot tell from the video.", None),
    ("No. The answer is yes.", None),
    ("", None),
    ("<think>Is it? No, wait.</think>Yes", "yes"),
    ("<think>Yes, probably", None),
    # Negations that answer without the word "no".
    ("Not at all, it gets larger.", "no"),
    ("Never.", "no"),
    ("Definitely not", "no"),
    ("Not sure.", None),
    ("Not the red one, the blue one.", None),
    ("Not at all. The answer is yes.", None),
    ("No doubt about it.", None),  # an idiom, not the answer no
    ("No wonder it fell.", None),
]


@pytest.mark.parametrize("reply, expected", YES_NO_CASES)
def test_parse_yes_no(reply, expected):
    assert parse_yes_no(reply) == expected


# Open-ended answers (ActivityNet-QA).

@pytest.mark.parametrize("text, normalised", [
    ("The two RED cars.", "2 red cars"),
    ("  an apple ", "apple"),
    ("<think>hmm, three or four</think>Three", "3"),
    ("In the kitchen!", "in kitchen"),
    ("", ""),
])
def test_normalize_answer(text, normalised):
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize("reply, answer, expected", [
    ("Dancing.", "dancing", True),
    ("Two.", "2", True),
    ("in the room", "in room", True),
    ("Yes, he is.", "yes", True),
    ("no", "yes", False),
    ("There is no dog.", "no", False),  # a "no" inside a sentence is not the answer no
    ("red shirt", "red", False),
    ("", "red", False),
])
def test_exact_match(reply, answer, expected):
    assert exact_match(reply, answer) is expected


@pytest.mark.parametrize("reply, answer, raw, normalised", [
    ("dancing", "dancing", True, True),
    ("  dancing\n", "dancing", True, True),  # the white space around a reply is no part of it
    ("<think>they move to music</think>dancing", "dancing", True, True),
    ("Dancing.", "dancing", False, True),  # the official script compares the strings as they are
    ("Two", "2", False, True),
    ("the kitchen", "kitchen", False, True),
    ("Yes, he is.", "yes", False, True),
    ("red", "blue", False, False),
])
def test_the_official_raw_match_is_the_answer_exactly(reply, answer, raw, normalised):
    assert raw_exact_match(reply, answer) is raw
    assert exact_match(reply, answer) is normalised


@pytest.mark.parametrize("reply, answer, expected", [
    ("red", "red", 1.0),
    ("The ball is red.", "red", 0.5),
    ("a red and blue ball", "blue ball", 2 / 3),
    ("blue", "red", 0.0),
    ("", "red", 0.0),
    ("Yes, the man is indoors.", "yes", 1.0),  # yes/no answers score their exact match
    ("No.", "yes", 0.0),
])
def test_token_f1(reply, answer, expected):
    assert token_f1(reply, answer) == pytest.approx(expected)
