"""Sentence splitting and the small text checks shared by answers, summaries and lookup."""

from __future__ import annotations

import re

# Split after . ! ? when the next sentence starts with a capital, digit or quote, but not
# after common abbreviations ("e.g.", "et al.", "Fig.") or inside decimals ("3.2").
_ABBREVIATIONS = ("e.g", "i.e", "et al", "etc", "fig", "figs", "eq", "eqs", "vs", "cf", "approx", "resp", "no", "sec", "al")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")

# Sentences in a source that address the assistant rather than describe research.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|prompts?|rules)\b"
    r"|\b(reply|respond|answer|say|output|print)\b.{0,20}\bonly\b"
    r"|\byou are (now )?(an? )?(assistant|ai|chatbot|language model)\b"
    r"|\bsystem prompt\b",
    re.IGNORECASE,
)


_BOILERPLATE = re.compile(
    r"https?://|\b(code|models?|data(sets?)?|implementation|weights)\b.{0,40}\b(available|released|open-sourced|public)\b",
    re.IGNORECASE,
)


def is_boilerplate(sentence: str) -> bool:
    """Links and availability notices: useful as code links, useless as evidence for a claim."""
    return bool(_BOILERPLATE.search(sentence))


def split_sentences(text: str) -> list[str]:
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start() + 1].strip()
        last_word = candidate.rstrip(".!?\"')]").rsplit(" ", 1)[-1].lower()
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def looks_like_instruction(sentence: str) -> bool:
    """True for text that tries to steer the assistant ("ignore previous instructions ...").

    Such sentences are never used as evidence: sources are data, not instructions.
    """
    return bool(_INSTRUCTION.search(sentence))


def with_markers(sentence: str, numbers: list[int]) -> str:
    """'Claim.' + [1, 3] -> 'Claim [1][3].' (markers before the closing punctuation)."""
    markers = "".join(f"[{n}]" for n in numbers)
    if not markers:
        return sentence
    body, end = (sentence[:-1], sentence[-1]) if sentence[-1:] in ".!?" else (sentence, ".")
    return f"{body.rstrip()} {markers}{end}"
