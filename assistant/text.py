"""Sentence splitting and the small text checks shared by answers, summaries and lookup."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import Stemmer

if TYPE_CHECKING:
    from .records import Paper

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


# Statements about the field rather than the paper: what "has been shown", "recent
# advances", what is "commonly used", "the most common choice" or "inherently limited". A reader of a summary
# learns nothing about the cited paper from them (benchmarks/readability.py counts them).
_FIELD = re.compile(
    r"\b(has|have) (recently |also |long )?(been|become|gained|received|attracted|shown|emerged|demonstrated|achieved|led|grown|reigned|"
    r"provided|enabled|revolution[iz]ed|dominated|transformed|witnessed|seen)\b"
    r"|\brecent (years|advances?|advancements|progress|successes?|studies|research|work)\b"
    r"|\b(growing|increasing|rising|ever-growing|ever-increasing) (\w+ )?(demands?|interest|needs?|popularity|attention|adoption|importance)\b"
    r"|\b(is|are) (a |an )?(widely|commonly|increasingly) used\b|\b(is|are) (highly|inherently|often) (sensitive|limited)\b"
    r"|\b(is|are) (the |a |an )?(most |de facto )?(common|popular|standard|default|dominant|prevailing|mainstream) "
    r"(\w+ )?(choices?|approach(es)?|methods?|practices?|paradigms?|techniques?|options?|solutions?)\b"
    r"|\b(continues?|continued) to (grow|increase|rise|expand|scale)\b|\b(becomes?|becoming|is|are) increasingly\b"
    r"|\b(is|are) (one|some) of the (main|major|key|primary|biggest|central|most important|fundamental) (\w+ )?"
    r"(factors?|challenges?|bottlenecks?|obstacles?|problems?|issues?|limitations?|concerns?)\b",
    re.IGNORECASE,
)
_OWN_WORK = re.compile(
    r"\b(we|our|us|the authors'?|this (paper|work|study|article)|here|the proposed|proposed (method|approach|framework|model|algorithm))\b",
    re.IGNORECASE,
)


def is_background(sentence: str) -> bool:
    """Does the sentence describe the field, not what this paper does or finds?"""
    return bool(_FIELD.search(sentence)) and not _OWN_WORK.search(sentence)


# An abstract's opening often describes the approach it departs from in the words of a
# contribution ("Activation compressed training provides a solution towards reducing the memory
# cost …"), and the next sentence turns on it ("However, state-of-the-art work …").
_TURNS_ON_IT = re.compile(r"^\W*(however|but|yet|nevertheless|nonetheless|unfortunately|despite|in contrast|still)\b", re.IGNORECASE)
_OPENING_SENTENCES = 4


def background_flags(sentences: list[str]) -> list[bool]:
    """For each sentence of one abstract (in order): does it describe the field, not the
    paper? `is_background`, or one of the first four sentences, without "we"/"our", that
    the next sentence turns on ("However, …"). In the shipped corpus the rule adds 107
    sentences among the first four, and each, read by hand, sets the scene. From the fifth
    sentence on it would add 9, of which 4 state the paper's own method or result
    ("NIRVANA improves encoding quality …"), so position counts."""
    flags = [is_background(sentence) for sentence in sentences]
    for i in range(min(_OPENING_SENTENCES, len(sentences) - 1)):
        if _TURNS_ON_IT.search(sentences[i + 1]) and not _OWN_WORK.search(sentences[i]):
            flags[i] = True
    return flags


def sets_the_scene(sentence: str, sentences: list[str]) -> bool:
    """Is `sentence`, one of its abstract's `sentences`, about the field (background_flags)?"""
    return sentence in sentences and background_flags(sentences)[sentences.index(sentence)]


def is_boilerplate(sentence: str) -> bool:
    """Links and availability notices: useful as code links, useless as evidence for a claim."""
    return bool(_BOILERPLATE.search(sentence))


# Inside source text, citation markers and prompt structure are data: "[4]" would read as
# one of our citations, "### Answer" or a chat-template tag as the prompt's own structure.
_SOURCE_MARKER = re.compile(r"\[(\d+(?:\s*[,;\u2013-]\s*\d+)*)\]")
_DELIMITERS = re.compile(
    r"(?<!\w)#{2,}|<\|[^|<>]{0,40}\|>|\[/?INST\]|<</?SYS>>|"
    r"</?\s*(?:s|bos|eos|start_of_turn|end_of_turn|system|user|assistant|model|evidence|abstract|key_points|question|answer)\s*>",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
ELLIPSIS = "…"


def _inert_marker(match: re.Match) -> str:
    """A bracketed number group that reads as a reference becomes "(4)"; one that reads as
    an interval ("[0,1]", "[1,2]^d") keeps its meaning in full-width brackets ("［0,1］"),
    which look the same to a reader but are not citation markers (an open interval "(0,1)"
    would say something else)."""
    inner, after = match.group(1), match.string[match.end() : match.end() + 1]
    if after in ("^", "_") or any(int(n) == 0 for n in re.findall(r"\d+", inner)):
        return f"［{inner}］"
    return f"({inner})"


# arXiv abstracts keep LaTeX's escapes ("more than 45\% less memory"); shown as Markdown they
# came out with a visible backslash.
_LATEX_ESCAPE = re.compile(r"\\([%&_#$])")


def neutralize(text: str) -> str:
    """Source text as inert data: bracketed numbers become "(4)" (they are the source's own
    references, never ours; intervals keep their brackets, see _inert_marker) and prompt
    delimiters and chat-template tags are removed; LaTeX escapes ("45\\%") are unescaped."""
    text = _LATEX_ESCAPE.sub(r"\1", text)
    text = _SOURCE_MARKER.sub(_inert_marker, text)
    text = _CONTROL.sub(" ", text)
    return " ".join(_DELIMITERS.sub(" ", text).split())


def cap(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with a visible ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


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


# Longer than any real abstract sentence seen (1,670 characters in SciFact's 5,183 abstracts,
# 762 in the shipped corpus); a "sentence" beyond it is a pasted table or generated junk, and
# shown whole it would fill the screen (a 200,000-character one was printed by `ask`).
MAX_SENTENCE_CHARS = 2000


def evidence_sentences(abstract: str) -> list[str]:
    """The sentences of an abstract that may serve as evidence, in order: the unit the
    sentence index stores and answers quote (instruction-like sentences never count; a
    runaway one is cut with a visible ellipsis)."""
    return [cap(s, MAX_SENTENCE_CHARS) for s in split_sentences(abstract) if not looks_like_instruction(s)]


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


# --- lexical grounding: shared by answer and summary verification -----------------

STOPWORDS = frozenset(
    """
    a about above across after again against all almost along also although always am among an and any are
    around as at be became because become been before being below between both but by can cannot could did do
    does doing done down due during each either else enough especially even ever every few for from further
    get gets given gives had has have having here how however if in into is it its itself just least less
    like made make makes many may more most much must near need needs neither no nor not now of off often on
    once one only onto or other others otherwise our ours out over own per perhaps rather same several shall
    she should show shows shown since so some such than that the their them themselves then there therefore
    these they this those though through thus to together too toward towards under until up upon us use used
    uses using very via was we well were what whatever when where whether which while who whom whose why will
    with within without would yet you your
    paper papers propose proposes proposed present presents introduce introduces introduced approach approaches
    method methods result results work works novel new based study studies existing previous recent recently
    state art demonstrate demonstrates achieve achieves achieved significant significantly first two three
    problem problems performance experiments experimental extensive effective efficient model models framework
    et al e g i various different large small high low better best improve improves improved wide provide provides
    https http github com www code available project page highly generic critical rethinking beyond
    simple general towards toward effectively efficiently
    """.split()
)
# How people phrase a question, not what it is about (stemmed, as BM25 sees them).
# bm25s's English stop words keep question words such as "how", "can" and "very".
_SCAFFOLDING_WORDS = """
    how can could would should what which who whom whose why when where does did very really actually also just
    please much many
    paper papers article articles publication publications anyone anything something someone know tell explain
    looking trying want wondering wonder need idea ideas exist exists mention mentions discuss discusses thing things
    kind sort lot lots little bit quite pretty somehow few several show shows showing
""".split()


WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")

STEMMER = Stemmer.Stemmer("english")
QUESTION_SCAFFOLDING = frozenset(STEMMER.stemWords(_SCAFFOLDING_WORDS))
# Words a faithful paraphrase may add: how a summary talks about a paper, not what it claims.
_FRAMING = frozenset(
    "authors author article researchers describe describes described introduces presented presents proposes "
    "developed develops designed designs called named termed aims address addresses addressed focus focuses "
    "including include includes".split()
)


def _content_stems(text: str) -> list[str]:
    words = (w.lower() for w in WORD.findall(text))
    return [STEMMER.stemWord(w) for w in words if len(w) >= 4 and w not in STOPWORDS and w not in _FRAMING]


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[str]:
    return {match.group().replace(",", "") for match in _NUMBER.finditer(text)}


def grounded(sentence: str, papers: list["Paper"]) -> bool:
    """True unless the sentence states a number none of its cited papers state, or brings
    in content words that none of them use (stemmed): at most one per dozen content
    words, plus one, is tolerated.

    The embedding check in Verifier accepts a sentence that is close in meaning overall;
    this lexical check catches a small model splicing in a detail from elsewhere
    (e.g. its few-shot example), which similarity alone can miss.
    """
    if not _numbers(sentence) <= {n for paper in papers for n in _numbers(paper.document)}:
        return False  # a figure its sources never state ("improves accuracy by 10%")
    stems = _content_stems(sentence)
    if not stems:
        return True
    known = {stem for paper in papers for stem in _content_stems(paper.document)}
    novel = [stem for stem in stems if stem not in known]
    return len(novel) <= 1 + len(stems) // 12


# A system name: CamelCase ("FedTiny", "ImageNet") or letters with digits ("GPT-4", "ResNet50").
SYSTEM_NAME = re.compile(r"(?<![\w-])(?:[A-Z][a-z]+[A-Z][\w-]*|[A-Za-z]*[A-Z][A-Za-z]*-?\d[\w.-]*)(?![\w-])")


def moved_names(sentence: str, evidence: str, allowed: str = "") -> list[str]:
    """System names the sentence uses that its evidence sentence does not (nor `allowed`,
    e.g. the paper's own name and title). A small model rewording "Neural network pruning is
    an essential technique for …" into "FedTiny is an essential technique for …" keeps every
    content word of the abstract and most of the meaning, so similarity and `grounded` pass
    it; the name moved into a claim its sentence makes about something else."""
    known = f"{evidence} {allowed}"
    return [name for name in dict.fromkeys(SYSTEM_NAME.findall(sentence)) if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", known)]

