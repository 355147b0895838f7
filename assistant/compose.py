"""Composed answers: what a reader gets when the model's own text does not hold up.

A small model's text rarely survives verification, and quoting the best sentences as they
stand reads as a paste ("However, we propose …" from three abstracts). The composer
writes the answer itself, from the evidence, without a model:

- it leads with the paper that best answers the question, naming it;
- it adds each further paper that answers the question on its own and says something
  different (a "which approaches …" question gets several, a pointed question one,
  unless a second paper answers it as well as the first);
- each paper gets its most relevant sentence (by the calibrated relevance to the
  question, not its position in the abstract), and a second one when that also answers;
- sentences are made self-contained (assistant.rewrite) and framed with the paper's name;
  one that cannot stand alone is passed over.

Every displayed sentence is checked by the same Verifier as generated text, against the
abstract it cites; a framing the verifier does not accept falls back to the plain
sentence, which is the quote itself. The citation's evidence is always the original quote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .citations import CheckedSentence, CitedText, Verifier, render
from .evidence import SourceSet
from .records import normalize_title
from .rewrite import has_dangling_opening, lower_first, refers_back, self_contained, short_name
from .settings import Settings
from .text import background_flags, grounded, is_boilerplate

Relevance = Callable[[str, np.ndarray], float]

# Questions that ask for a survey of the corpus rather than one fact: a plural of "papers"
# or "methods" asked for ("which methods …", "what models are there …"), not merely named
# ("how can I make diffusion models faster" is a pointed question).
_SURVEYED = (
    r"(papers|works|studies|approaches|methods|techniques|ways|models|architectures|options|alternatives|"
    r"strategies|systems|researchers|groups|examples|tricks|tools)"
)
# Words between "which" and the plural: adjectives and nouns ("which post-training quantization
# methods"), never a verb or article ("what loss do diffusion models use" asks about one loss).
_GAP = r"((?!(do|does|did|is|are|was|were|can|could|should|would|will|the|a|an|of|about|on|in|for|to|with|say|says)\b)[\w-]+\s+){0,3}"
_SEVERAL = re.compile(
    r"\b(which|what|any|other|different|several|various|popular|list( of)?|all( the)?|are there( any)?)\s+" + _GAP + _SURVEYED + r"\b"
    r"|\b" + _SURVEYED + r"\s+(are there|exist|have been|has been|do people|can i)\b"
    r"|^\W*" + _SURVEYED + r"\b"  # "Papers on graph neural networks for chemistry"
    r"|\b(find|show|give|recommend|looking for)( me)?\s+" + _GAP + _SURVEYED + r"\b"
    r"|\bhow (do|did|have) (people|researchers|others)\b"
    r"|\b(compare|comparison|difference between|differences|versus|vs\.?|survey|overview|literature|state[- ]of[- ]the[- ]art|"
    r"recent (work|research|papers)|is there (any )?(work|research|paper)|any work|who (has|have)|what (has|have) been)\b",
    re.IGNORECASE,
)
_RESULT = re.compile(
    r"\b(outperform\w*|achiev\w*|improv\w*|reduc\w*|surpass\w*|speed\w*|faster|fewer|better|results? show|"
    r"experiments? show|we (show|find|observe|demonstrate))\b|\d+(\.\d+)?\s?(%|x\b|×)",
    re.IGNORECASE,
)
# What a sentence contributes: a method or a result answers; background sets the scene.
_CONTRIBUTES = re.compile(
    r"\b(we (propose|introduce|present|develop|design|build|train|show|find|demonstrate|observe|prove|derive)|"
    r"(is|are) proposed|outperform\w*|achiev\w*|reduc\w*|improv\w*)\b",
    re.IGNORECASE,
)
_BACKGROUND = re.compile(
    r"\b(has|have) (recently )?(become|been|gained|received|attracted|shown|emerged|demonstrated)|\brecent (years|advances|progress|successes?)\b|\b(important|crucial|essential|fundamental|"
    r"popular|challenging|increasingly|remains?|despite|although|however|suffer\w*|struggl\w*|limitations?|"
    r"difficult|prohibitive|unfortunately|lack\w*)\b",
    re.IGNORECASE,
)
# "How much faster is it?", "how accurate did it get?": the answer is a figure, and a
# sentence stating one (41%, 7.93x, 2.3 billion, 12 hours) ranks above its neighbours.
_ASKS_QUANTITY = re.compile(
    r"\bhow (much|many|big|large|small|fast|quick(ly)?|slow|far|long|often|accurate|good|well|close|expensive|cheap)\b"
    r"|\bby how much\b|\bwhat (speed-?up|accuracy|error rate)\b|\bany (numbers|figures)\b",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"\d+(\.\d+)?\s?(%|x\b|×|-?fold\b|times\b|(thousand|million|billion|hours?|minutes?|seconds?|days?|ms|[KMGT]B|[KMB])\b)",
    re.IGNORECASE,
)
_FIGURE_BONUS = 0.1
_CONTRIBUTION_BONUS = 0.05
_BACKGROUND_PENALTY = 0.08
_REFERS_BACK_PENALTY = 0.1
_SEARCH_WEIGHT = 1.0
_REDUNDANT = 0.85  # cosine above which a second sentence repeats the first
_SECOND_PAPER_MARGIN = 0.03  # a pointed question takes a second paper only this close to the first
_FURTHER_PAPER_MARGIN = 0.10  # a survey question takes papers this close to the best...
_FURTHER_PAPER_RANK = 0.5  # ...that search also ranked at least half as high as the best
_SECOND_SENTENCE_MARGIN = 0.1


@dataclass
class _Choice:
    n: int
    sentence: str  # the abstract's sentence, as stored
    vector: np.ndarray
    relevance: float  # how well it answers the question (calibrated; thresholds apply to it)
    rank: float  # relevance adjusted for what the sentence contributes: orders a paper's sentences
    background: bool = False  # sets the scene ("X have emerged as …") rather than contributing
    scene: bool = False  # describes the field, not the paper (assistant.text.background_flags): the last resort


def wants_several(question: str) -> bool:
    """Does the question ask for several papers or approaches ("which methods …")?"""
    return bool(_SEVERAL.search(question))


def compose_answer(
    question: str,
    sources: SourceSet,
    relevance: Relevance,
    settings: Settings,
    *,
    max_papers: int = 4,
    order_by: Relevance | None = None,
) -> CitedText:
    """The composed answer over these sources (see the module docstring); empty when no
    sentence reaches `settings.answer_relevance` (the caller abstains or quotes).
    `order_by`, if given, orders each paper's sentences in place of `relevance` (which
    still decides what answers at all and which papers lead)."""
    figures = bool(_ASKS_QUANTITY.search(question))
    per_paper = {
        n: _candidates(n, source.sentences, source.vectors, relevance, order_by, figures) for n, source in sources.sources.items()
    }
    per_paper = {n: c for n, c in per_paper.items() if c}
    if not per_paper:
        return render([], sources)
    floor = settings.answer_relevance

    def best_relevance(n: int) -> float:
        return max(c.relevance for c in per_paper[n])

    def paper_score(n: int) -> float:
        """The best sentence's relevance plus search's fused score (relative to the top
        hit), weighted equally: the order of the papers after search's first."""
        return best_relevance(n) + _SEARCH_WEIGHT * sources[n].similarity

    order = sorted(per_paper, key=lambda n: -paper_score(n))
    first = min(per_paper)  # sources are numbered in search order
    if first == min(sources.sources) and best_relevance(first) >= floor:
        order.remove(first)  # search's first paper answers: it leads (never cite worse than search ranks)
        order.insert(0, first)
    lead = order[0]
    best = best_relevance(lead)
    several = wants_several(question)
    limit = max_papers if several else 2

    chosen: list[list[_Choice]] = [_sentences_for(per_paper[lead], floor)]
    for n in order[1:]:
        if len(chosen) >= limit:
            break
        top = per_paper[n][0]
        if several:
            wanted = top.relevance >= max(floor, best - _FURTHER_PAPER_MARGIN) and sources[n].similarity >= _FURTHER_PAPER_RANK
        else:  # a pointed question: a second paper only if it answers as well as the first
            wanted = top.relevance >= max(floor, best - _SECOND_PAPER_MARGIN)
        if not wanted or top.background or top.scene or any(float(top.vector @ c.vector) >= _REDUNDANT for picks in chosen for c in picks):
            continue  # not an answer (background near the question's words is not one), or said already
        chosen.append(_sentences_for(per_paper[n], floor, count=1))

    verifier = Verifier(sources, settings.support_threshold)
    checked: list[CheckedSentence] = []
    for i, picks in enumerate(chosen):
        lead_sentence = _verified(picks[0], sources, verifier, name_it=True, must_name=i > 0)
        if lead_sentence is None:
            continue  # a further paper's sentence that cannot carry its name would read as the previous paper's
        checked.append(lead_sentence)
        checked.extend(s for s in (_verified(p, sources, verifier, name_it=False) for p in picks[1:]) if s)
    return render(checked, sources)


def _candidates(
    n: int,
    sentences: list[str],
    vectors: np.ndarray,
    relevance: Relevance,
    order_by: Relevance | None = None,
    figures: bool = False,
) -> list[_Choice]:
    """A paper's sentences that can stand alone, best answer first: a method or result
    ranks above background, a sentence stating a figure above others when the question
    asks how much (`figures`), and a sentence leaning on an earlier one ("these models") below."""
    ranked = []
    for sentence, vector, scene in zip(sentences, vectors, background_flags(sentences)):
        standalone = self_contained(sentence, "the paper")
        if is_boilerplate(sentence) or sentence.rstrip().endswith("?") or standalone is None:
            continue
        score = relevance(sentence, vector)
        rank = score if order_by is None else order_by(sentence, vector)
        if _CONTRIBUTES.search(sentence):
            rank += _CONTRIBUTION_BONUS
        if figures and _FIGURE.search(sentence):
            rank += _FIGURE_BONUS
        if _BACKGROUND.search(sentence):
            rank -= _BACKGROUND_PENALTY
        if refers_back(standalone):  # as displayed: "To address this problem, " is gone by then
            rank -= _REFERS_BACK_PENALTY
        background = bool(_BACKGROUND.search(sentence)) and not (_CONTRIBUTES.search(sentence) or _RESULT.search(sentence))
        ranked.append(_Choice(n, sentence, vector, score, rank, background, scene))
    # A statement about the field ("KV caches have become the main memory cost …") is often
    # the closest to the question and answers nothing: the last resort, whatever its rank.
    return sorted(ranked, key=lambda c: (c.scene, -c.rank))


def _sentences_for(candidates: list[_Choice], floor: float, count: int = 2) -> list[_Choice]:
    """The paper's best sentence, and a second that also answers and adds something."""
    picks = [candidates[0]]
    for candidate in candidates[1:]:
        if len(picks) >= count:
            break
        if candidate.rank < picks[0].rank - _SECOND_SENTENCE_MARGIN or candidate.relevance < floor:
            break
        if float(candidate.vector @ picks[0].vector) < _REDUNDANT and not candidate.scene:
            picks.append(candidate)  # a second sentence that sets the scene adds nothing to the answer
    return picks


def _verified(pick: _Choice, sources: SourceSet, verifier: Verifier, *, name_it: bool, must_name: bool = False) -> CheckedSentence | None:
    """The best wording the verifier accepts: named and self-contained, else (unless the
    name is required) self-contained, else the quote as it stands (always faithful) when
    it reads on its own; None otherwise."""
    n = pick.n
    paper = sources[n].paper
    name = f"*{short_name(paper.title)}*"
    # a paper's second sentence follows its named first one: "the paper" is enough there
    plain = self_contained(pick.sentence, name if name_it else "the paper") or pick.sentence
    wordings = [_named(plain, name, paper.abstract)] if name_it else []
    if not must_name:
        wordings.append(plain)
    vectors = sources.embedder.embed(wordings)
    for wording, vector in zip(wordings, vectors):
        score, _ = verifier.support(wording, vector, n)
        if normalize_title(wording) == normalize_title(pick.sentence):
            score = 1.0
        if score >= verifier.threshold and grounded(wording, [paper]) and not has_dangling_opening(wording):
            return CheckedSentence(wording, [n], {n: (score, pick.sentence)})
    if must_name or has_dangling_opening(pick.sentence):
        return None  # a quote that points back at its unseen abstract would not read on its own
    return CheckedSentence(pick.sentence, [n], {n: (1.0, pick.sentence)})


def _named(sentence: str, name: str, abstract: str) -> str:
    """Frame the sentence with the paper's name, unless it already names it."""
    bare = name.strip("*")
    if name in sentence:
        return sentence
    if sentence.startswith(bare + " ") or sentence.startswith(bare + ","):
        return name + sentence[len(bare) :]
    if sentence.startswith("The authors "):
        return f"In {name}, the authors {sentence[len('The authors '):]}"
    if sentence.startswith("The authors' "):
        return f"In {name}, the authors' " + sentence[len("The authors' ") :]
    if _RESULT.search(sentence):
        return f"{name} reports that {lower_first(sentence, abstract)}"
    return f"According to {name}, {lower_first(sentence, abstract)}"
