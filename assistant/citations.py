"""Citation verification: the reason answers can be trusted whatever model wrote them.

Each sentence of generated text is checked on its own:
- a citation to a number that was not given is removed;
- a citation is kept only if the sentence is supported by the cited paper: the best
  similarity between the sentence and any sentence of that paper's abstract (or exact
  containment) reaches `support_threshold`;
- a sentence left without a supported citation is re-attributed to the given source that
  does support it, if any, and otherwise dropped (reported in `dropped`);
- a sentence that names a given paper it does not cite ("*D'OH* and … are both effective
  methods [1]", where D'OH is [9]) is dropped: it attributes a claim to a paper unchecked.
The surviving sentences are renumbered 1..m in order of first citation, and the
reference list holds exactly the cited papers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .evidence import EvidenceSentence, SourceSet
from .records import normalize_title
from .rewrite import short_name
from .text import SYSTEM_NAME, grounded, looks_like_instruction, moved_names, neutralize, split_sentences, with_markers

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LEADING_MARKERS = re.compile(r"^(\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")


@dataclass
class CheckedSentence:
    text: str  # the sentence without citation markers
    cited: list[int]  # source numbers whose citation survived
    support: dict[int, tuple[float, str]] = field(default_factory=dict)  # n -> (score, best source sentence)
    removed: list[int] = field(default_factory=list)  # citations removed (out of range or unsupported)
    reattributed: bool = False

    @property
    def supported(self) -> bool:
        return bool(self.cited)


@dataclass
class Citation:
    n: int
    id: str
    title: str
    sentence: str  # the cited sentence of the answer or summary
    evidence: str  # the source sentence that supports it
    support: float
    relevance: float | None = None  # how well the evidence answers the question (answers only)
    strength: str | None = None  # "strong" | "weak": `relevance` in plain words

    @property
    def paper_id(self) -> str:
        return self.id

    @property
    def label(self) -> str:
        """Support and relevance in plain words: 'quoted from [1]; answers the question: strong'."""
        source = f"quoted from [{self.n}]" if self.support >= 0.999 else f"supported by [{self.n}] ({self.support:.2f})"
        return source if self.strength is None else f"{source}; answers the question: {self.strength}"

    def to_dict(self) -> dict:
        data = {
            "n": self.n,
            "id": self.id,
            "title": self.title,
            "sentence": self.sentence,
            "evidence": self.evidence,
            "support": round(self.support, 4),
        }
        if self.relevance is not None:
            data["relevance"] = round(self.relevance, 4)
            data["answers_question"] = self.strength
            data["label"] = self.label
        return data


@dataclass
class Reference:
    n: int
    id: str
    title: str
    code_url: str
    date: str
    sources: list[str]

    def to_dict(self) -> dict:
        return {"n": self.n, "id": self.id, "title": self.title, "code_url": self.code_url, "date": self.date, "sources": self.sources}


@dataclass
class CitedText:
    """Verified text with its citations and references, numbered 1..m."""

    sentences: list[tuple[str, list[int]]]  # (sentence, new citation numbers)
    citations: list[Citation]
    references: list[Reference]
    dropped: list[str]
    removed_citations: int
    kept: list[int] = field(default_factory=list)  # which of the items given to render each sentence is

    @property
    def text(self) -> str:
        return " ".join(with_markers(sentence, numbers) for sentence, numbers in self.sentences)


def parse_cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Split generated text into (sentence without markers, cited numbers)."""
    pieces = split_sentences(text.replace("\n", " "))
    result: list[tuple[str, list[int]]] = []
    for piece in pieces:
        leading = _LEADING_MARKERS.match(piece)
        if leading and result:  # "... claim. [2] Next claim": [2] belongs to the claim before
            result[-1][1].extend(_numbers(leading.group(0)))
            piece = piece[leading.end() :]
        numbers = _numbers(piece)
        sentence = _MARKER.sub("", piece).strip()
        sentence = re.sub(r"\s+([.,;:!?])", r"\1", sentence)
        sentence = _unquote(sentence)
        if sentence and sentence not in ".;,":
            result.append((sentence, numbers))
    return result


def _unquote(sentence: str) -> str:
    """Models often copy evidence with the quotes it was given in: '"Claim." .' -> 'Claim.'"""
    stripped = sentence.rstrip(" .")
    if len(stripped) > 2 and stripped[0] in "\"“" and stripped[-1] in "\"”":
        inner = stripped[1:-1].strip()
        return inner if inner[-1:] in ".!?" else inner + "."
    return sentence


def _numbers(text: str) -> list[int]:
    found: list[int] = []
    for group in _MARKER.findall(text):
        for number in re.split(r"[,;]", group):
            value = int(number.strip())
            if value not in found:
                found.append(value)
    return found


# A system name distinctive enough that a sentence using it names that paper: one word
# ("NUPES", "D'OH") or words with a capital, digit or sign inside ("LoRD", "m2mKD").
# A plain phrase ("Graph Neural Networks: a review") names a field, not a paper.
_DISTINCTIVE = re.compile(r"^\S+$|\S[A-Z0-9'+\-]")


def _name_patterns(sources: SourceSet) -> dict[int, re.Pattern]:
    """Source number -> how a sentence would name it: its distinctive system name, or its
    whole title when that is four words or more."""
    patterns = {}
    for n in sources.numbers():
        title = " ".join(sources[n].paper.title.split())
        name = short_name(title)
        names = [title] if len(title.split()) >= 4 else []
        if name != title and len(name) >= 3 and _DISTINCTIVE.search(name):
            names.append(name)
        if names:
            patterns[n] = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(x) for x in names) + r")(?!\w)")
    return patterns


class Verifier:
    def __init__(self, sources: SourceSet, threshold: float) -> None:
        self.sources = sources
        self.threshold = threshold
        self._names = _name_patterns(sources)

    def names_uncited(self, sentence: str, cited: list[int]) -> list[int]:
        """Given papers the sentence names but does not cite. A name the cited papers' own
        text uses ("compatible with SpQR", a baseline that is also a source) is theirs to say."""
        cited_text = " ".join(f"{self.sources[n].paper.title} {self.sources[n].paper.abstract}" for n in cited if n in self.sources)
        return [
            n for n, pattern in self._names.items()
            if n not in cited and pattern.search(sentence) and not pattern.search(cited_text)
        ]

    def support(self, sentence: str, vector: np.ndarray, n: int) -> tuple[float, str]:
        """How well source n supports the sentence: best sentence similarity, 1.0 if quoted."""
        source = self.sources[n]
        if not source.sentences:
            return 0.0, ""
        scores = source.vectors @ vector
        best = int(np.argmax(scores))
        score = float(scores[best])
        normalized = normalize_title(sentence)
        if len(normalized) > 20 and normalized in normalize_title(source.paper.abstract):
            score = 1.0
        return score, source.sentences[best]

    def check(self, text: str) -> list[CheckedSentence]:
        parsed = parse_cited_sentences(text)
        if not parsed:
            return []
        vectors = self.sources.embedder.embed([sentence for sentence, _ in parsed])
        checked = []
        for (sentence, numbers), vector in zip(parsed, vectors):
            item = CheckedSentence(sentence, [])
            if looks_like_instruction(sentence):
                item.removed = numbers
                checked.append(item)
                continue
            for n in numbers:
                if n not in self.sources:
                    item.removed.append(n)
                    continue
                score, evidence = self.support(sentence, vector, n)
                item.support[n] = (score, evidence)
                (item.cited if score >= self.threshold else item.removed).append(n)
            if item.cited and (
                not grounded(sentence, [self.sources[n].paper for n in item.cited]) or self.moved_names(sentence, item.cited)
            ):
                item.removed += item.cited  # close in meaning, but adds details its sources never state
                item.cited = []
            if not item.cited:  # uncited or wrongly cited: credit the source that supports it, if any
                self._reattribute(item, sentence, vector)
            if item.cited and self.names_uncited(sentence, item.cited):
                item.removed += item.cited
                item.cited = []
            checked.append(item)
        return checked

    def moved_names(self, sentence: str, cited: list[int]) -> list[str]:
        """System names the sentence puts into a claim that its cited abstracts make about
        something else (see text.moved_names). The claim is found without the names: they
        pull the similarity towards whichever sentence mentions them ("FedTiny is an essential
        technique for …" is closest to a sentence about FedTiny's results, while "it is an
        essential technique for …" is the abstract's "Neural network pruning is …")."""
        papers = [self.sources[n].paper for n in cited if n in self.sources]
        names = " ".join(f"{p.title} {short_name(p.title)}" for p in papers)
        if not moved_names(sentence, "", names):
            return []
        quoted = normalize_title(sentence)
        if len(quoted) > 20 and any(quoted in normalize_title(p.abstract) for p in papers):
            return []  # a quote says what its abstract says, names and all
        masked = SYSTEM_NAME.sub("it", sentence)
        vector = self.sources.embedder.embed_one(masked)
        claims = " ".join(self.support(masked, vector, n)[1] for n in cited if n in self.sources)
        return moved_names(sentence, claims, names)

    def _reattribute(self, item: CheckedSentence, sentence: str, vector: np.ndarray) -> None:
        best = max(((self.support(sentence, vector, n), n) for n in self.sources.numbers()), key=lambda x: x[0][0])
        (score, evidence), n = best
        if score >= self.threshold and grounded(sentence, [self.sources[n].paper]) and not self.moved_names(sentence, [n]):
            item.cited = [n]
            item.support[n] = (score, evidence)
            item.reattributed = True


def render(checked: list[CheckedSentence], sources: SourceSet) -> CitedText:
    """Keep supported sentences, renumber sources 1..m by first citation, build references."""
    renumber: dict[int, int] = {}
    sentences: list[tuple[str, list[int]]] = []
    citations: list[Citation] = []
    dropped: list[str] = []
    removed = 0
    seen: set[str] = set()
    kept: list[int] = []
    for index, item in enumerate(checked):
        removed += len(item.removed)
        key = normalize_title(item.text)
        if key in seen:
            continue  # small models repeat themselves; a repeat adds nothing
        seen.add(key)
        item.text = neutralize(item.text)  # a source's own "[4]" must not read as one of ours
        if not item.supported:
            dropped.append(item.text)
            continue
        new_numbers = []
        for n in item.cited:
            new = renumber.setdefault(n, len(renumber) + 1)
            new_numbers.append(new)
            paper = sources[n].paper
            score, evidence = item.support[n]
            citations.append(Citation(new, paper.id, paper.title, item.text, evidence, score))
        sentences.append((item.text, new_numbers))
        kept.append(index)
    references = [
        Reference(new, sources[old].paper.id, sources[old].paper.title, sources[old].paper.code_url, sources[old].paper.date, sources[old].paper.sources)
        for old, new in sorted(renumber.items(), key=lambda kv: kv[1])
    ]
    return CitedText(sentences, citations, references, dropped, removed, kept)


def extractive(
    evidence: list[EvidenceSentence], sources: SourceSet, count: int = 3, margin: float = 0.1, min_relevance: float = 0.0
) -> CitedText:
    """Quote the best evidence sentences with their citations: correct by construction.
    Sentences much less relevant than the best one, or that do not address the question
    (relevance below `min_relevance`), are left out rather than padded in; the best one
    is always kept (the caller decided the question is answerable)."""
    ranked = sorted(evidence, key=lambda e: -e.score)
    best = [
        e
        for i, e in enumerate(ranked[:count])
        if i == 0 or (e.score >= ranked[0].score - margin and e.relevance >= min_relevance)
    ]
    checked = [CheckedSentence(e.text, [e.n], {e.n: (1.0, e.text)}) for e in best]
    return render(checked, sources)
