"""What a summary says about one paper: a sentence of its abstract, chosen for the topic
and for what the paper contributes, made self-contained and framed with the paper's name
("*MiniCPM* reports that …", "In *NUPES*, the authors propose …").

Every wording is checked like generated text: supported by the cited abstract (the
Verifier's similarity, or a verbatim quote), no content word foreign to it (`grounded`),
and no opening that points back at a sentence the reader cannot see
(`rewrite.has_dangling_opening`, `rewrite.refers_back`). The framed wording is tried
first, then the self-contained one, then the quote as it stands; a sentence none of whose
wordings passes is passed over for the paper's next best one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..citations import CheckedSentence, Verifier
from ..evidence import SourceSet
from ..records import Paper, normalize_title
from ..rewrite import has_dangling_opening, lower_first, refers_back, self_contained, short_name
from ..roles import ROLE_PROMPTS, assign_roles
from ..text import background_flags, grounded, is_boilerplate, looks_like_instruction

Relevance = Callable[[str, np.ndarray], float]

_RESULT = re.compile(
    r"\b(outperform\w*|achiev\w*|improv\w*|reduc\w*|surpass\w*|speed\w*|faster|fewer|better|results? show\w*|"
    r"experiments? show\w*|we (show|find|observe|demonstrate)|the authors (show|find|observe|demonstrate))\b|\d+(\.\d+)?\s?(%|x\b|×)",
    re.IGNORECASE,
)
# A contribution counts more than background: how much a role adds to a sentence's relevance.
ROLE_BONUS = {"method": 0.1, "result": 0.1, "problem": -0.08}
# "Extensive experiments show that X" → "*Name* reports that X".
_EVIDENCE_FRAME = re.compile(
    r"^(?:(?:extensive|comprehensive|our|the|empirical|experimental|numerical)\s+)*"
    r"(?:experiments?|results?|evaluations?|analys[ie]s|simulations?|studies)(?:\s+\S+){0,6}?\s+"
    r"(?:show|shows|demonstrate|demonstrates|indicate|indicates|confirm|confirms|reveal|reveals|suggest|suggests)\s+that\s+",
    re.IGNORECASE,
)


# A sentence that says what the paper does or finds, rather than background.
_CONTRIBUTION = re.compile(
    r"\b(we|our|this (?:paper|work|study)|propos\w*|introduc\w*|present\w*|develop\w*|design\w*|outperform\w*|"
    r"achiev\w*|demonstrat\w*|show\w*|experiments?|results?|evaluat\w*)\b",
    re.IGNORECASE,
)
_BACKGROUND_PENALTY = 0.1
# Openings that lean on the previous sentence and that rewrite.self_contained keeps.
_LOCAL_DROPPABLE = re.compile(
    r"^(?:(?:to (?:bridge|fill|close|address|tackle|overcome|solve|mitigate) the (?:\w+ )?"
    r"(?:gaps?|issues?|problems?|challenges?|limitations?)|initially|first|second|third|next|lastly|last but not least|"
    r"in this context|in this regard|in this setting|with this in mind|motivated by (?:this|these) \w+)\s*,\s*)+",
    re.IGNORECASE,
)


def _lower_first(sentence: str, context: str) -> str:
    """rewrite.lower_first, except before a capitalized name ("Graph Neural Networks")."""
    words = sentence.split(" ", 2)
    if len(words) > 1 and words[1][:1].isupper():
        return sentence
    return lower_first(sentence, context)


def contained(sentence: str, name: str) -> str | None:
    """rewrite.self_contained, after dropping a few more leading connectives."""
    stripped = _LOCAL_DROPPABLE.sub("", " ".join(sentence.split()))
    if stripped != sentence and stripped:
        stripped = stripped[0].upper() + stripped[1:]
    return self_contained(stripped, name) if stripped else None


@dataclass
class Candidate:
    n: int
    sentence: str  # the abstract's sentence, as stored
    vector: np.ndarray
    score: float
    role: str = ""


def paper_name(paper: Paper) -> str:
    """How prose names the paper: its system name or title, in italics."""
    return f"*{short_name(paper.title)}*"


def stands_alone(sentence: str) -> bool:
    """Can this abstract sentence be made self-contained at all?"""
    if is_boilerplate(sentence) or looks_like_instruction(sentence):
        return False
    plain = contained(sentence, "the paper")  # "To address this problem, we …" loses its opening
    return plain is not None and not refers_back(plain)


def role_vectors(embedder) -> np.ndarray:
    return embedder.embed(list(ROLE_PROMPTS.values()))


def candidates(
    n: int, sentences: list[str], vectors: np.ndarray, relevance: Relevance, roles: np.ndarray | None = None
) -> list[Candidate]:
    """The paper's sentences that can stand alone, best first: relevance to the topic plus
    a bonus for stating the method or the result (assistant.roles), not position."""
    usable = [i for i, s in enumerate(sentences) if stands_alone(s)]
    role_of: dict[str, str] = {}
    if roles is not None and usable:
        assigned = assign_roles([sentences[i] for i in usable], vectors[usable], roles)
        role_of = {sentence: role for role, sentence in assigned.items()}
    background = background_flags(sentences)
    ranked = []
    for i in usable:
        sentence = sentences[i]
        role = role_of.get(sentence, "")
        score = relevance(sentence, vectors[i]) + ROLE_BONUS.get(role, 0.0)
        if not role and not _CONTRIBUTION.search(sentence):
            score -= _BACKGROUND_PENALTY  # background, not what this paper contributes
        ranked.append(Candidate(n, sentence, vectors[i], score, role))
    # A sentence about the field ("GNNs are highly sensitive to …") is often the closest to
    # the topic and tells the least about the paper: the last resort, whatever its score.
    scene = {sentences[i] for i in usable if background[i]}
    return sorted(ranked, key=lambda c: (c.sentence in scene, -c.score))


def framed(sentence: str, name: str, abstract: str, role: str = "") -> str:
    """The self-contained sentence framed with the paper's name, unless it names it already."""
    bare = name.strip("*")
    if name in sentence:
        return sentence
    found = re.search(rf"(?<![\w*]){re.escape(bare)}(?![\w*])", sentence)
    if found:  # the sentence names the paper itself: mark the name
        return sentence[: found.start()] + name + sentence[found.end() :]
    evidence = _EVIDENCE_FRAME.match(sentence)
    if evidence and len(sentence) > evidence.end():
        return f"{name} reports that {sentence[evidence.end():]}"
    if sentence.startswith("The authors"):
        return f"In {name}, t" + sentence[1:]
    if role == "result" and "the authors" not in sentence:
        return f"{name} reports that {_lower_first(sentence, abstract)}"
    return f"In {name}, {_lower_first(sentence, abstract)}"


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def numbers_grounded(text: str, paper: Paper) -> bool:
    """Every figure in the wording is one the paper states (a model likes to add "by 10%")."""
    stated = set(_NUMBER.findall(f"{paper.title} {paper.abstract}"))
    return all(number in stated for number in _NUMBER.findall(text))


def readable(text: str) -> bool:
    """No opening that leans on an unseen sentence, no mid-sentence "this problem"."""
    return bool(text) and not has_dangling_opening(text) and not refers_back(text)


def verified(
    sentence: str,
    n: int,
    sources: SourceSet,
    verifier: Verifier,
    *,
    role: str = "",
    name_it: bool = True,
    named_only: bool = False,
    evidence: str | None = None,
) -> CheckedSentence | None:
    """The best wording of `sentence` (about paper `n`) that the verifier accepts and that
    reads on its own: framed with the name, else self-contained, else as it stands
    (`named_only`: only a wording that names the paper). None when no wording passes."""
    paper = sources[n].paper
    name = paper_name(paper)
    plain = contained(sentence, name)
    wordings: list[str] = []
    if plain:
        if name_it:
            wordings.append(framed(plain, name, paper.abstract, role))
        wordings.append(plain)
    wordings.append(sentence)
    wordings = [w for i, w in enumerate(wordings) if w and w not in wordings[:i] and readable(w)]
    if named_only:
        wordings = [w for w in wordings if name in w]
    if not wordings:
        return None
    vectors = sources.embedder.embed(wordings)
    abstract = normalize_title(paper.abstract)
    for wording, vector in zip(wordings, vectors):
        score, best = verifier.support(wording, vector, n)
        if normalize_title(wording) in abstract and len(normalize_title(wording)) > 20:
            score = 1.0
        if score >= verifier.threshold and grounded(wording, [paper]) and numbers_grounded(wording, paper):
            return CheckedSentence(wording, [n], {n: (score, _shown_evidence(wording, vector, n, sources, verifier, evidence, best))})
    return None


def _shown_evidence(
    wording: str, vector, n: int, sources: SourceSet, verifier: Verifier, evidence: str | None, best: str
) -> str:
    """The source sentence shown beside a wording: the given one (the quote it was made
    from, or the evidence of the text it rewords) while it still supports the wording, else
    the sentence that does. A reworded sentence can drift to another sentence of the same
    abstract; showing the old evidence would put a quote beside a claim it does not support."""
    if not evidence or evidence == best:
        return best
    source = sources[n]
    if normalize_title(wording) in normalize_title(evidence):
        return evidence
    if evidence in source.sentences and float(source.vectors[source.sentences.index(evidence)] @ vector) >= verifier.threshold:
        return evidence
    return best


def polish(item: CheckedSentence, sources: SourceSet, verifier: Verifier) -> CheckedSentence | None:
    """A verified generated sentence, made to read on its own ("This paper proposes …" →
    "*NUPES* proposes …") and checked again; None when it cannot be. A sentence about one
    paper must name it: "By using implicit MLPs, we can achieve …" as a bullet says nothing
    of whose work it is (the caller composes a named statement for the paper instead)."""
    if len(item.cited) == 1:
        n = item.cited[0]
        evidence = item.support.get(n, (0.0, ""))[1] or None
        result = verified(item.text, n, sources, verifier, named_only=True, evidence=evidence)
        if result is not None:
            result.reattributed = item.reattributed
        return result
    return item if readable(item.text) else None
