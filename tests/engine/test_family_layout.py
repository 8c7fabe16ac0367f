"""What every family's layout shares (``engine.family_layout``): the task's instruction is found in
the user text by its text, at either end, token by token, and nowhere else."""

import pytest

from lmms_eval_flow.engine.family_layout import instruction_spans
from lmms_eval_flow.engine.layout import TokenLayout

QUESTION = ["What", " colour", "?", "\n", "A", ".", " red", "\n", "B", ".", " blue"]


@pytest.mark.parametrize("pieces, instructions, spans", [
    # closing: the instruction's tokens, not the newline before it
    (QUESTION + ["\n", "Only", " give", " the", " best", " option", "."], ["Only give the best option."], [(12, 18)]),
    # given with its newline and trailing blanks, found the same
    (QUESTION + ["\n", "Only", " give", " the", " best", " option", ".", " "], ["\nOnly give the best option. "], [(12, 18)]),
    # opening and closing, each the longest that fits
    (["Please", " answer", ":", " ", *QUESTION, "\n", "Answer", " directly", "."],
     ["Please answer:", "Please", "Answer directly.", "directly."], [(0, 3), (16, 19)]),
    # inside the text, or only partly at its end: question
    (["Only", " give", " it", "?"], ["Only give the best option."], []),
    (QUESTION + ["\n", "best", " option", "."], ["the best option."], []),
    # a token that straddles the instruction's start stays question, the instruction's other tokens do not
    (QUESTION + [" best", "Only", " one"], ["Only one"], [(12, 14)]),
    (QUESTION + [" bestOnly", " one"], ["Only one"], [(12, 13)]),
    (QUESTION, [], []),
])
def test_instruction_spans(pieces, instructions, spans):
    assert instruction_spans(pieces, instructions) == spans


def test_a_user_text_that_is_only_the_instruction_has_an_empty_question():
    assert instruction_spans(["Only", " give"], ["Only give"]) == [(0, 2)]


def test_instruction_spans_are_template_and_nameable():
    layout = TokenLayout.from_spans(20, 2, [3, 3], (8, 14), instructions=[(15, 18)])
    assert layout.positions("instruction").tolist() == [15, 16, 17]
    assert layout.positions("template").tolist() == [14, 15, 16, 17, 18]
    assert layout.size("question") == 6 and layout.describe().startswith("prefix=2, video=6, question=6, template=5")
    with pytest.raises(ValueError, match=r"instruction span 10-12 must lie between the video \(ends at 8\) and the "
                                         r"question 8-14, or between the question and the last position"):
        TokenLayout.from_spans(20, 2, [3, 3], (8, 14), instructions=[(10, 12)])
