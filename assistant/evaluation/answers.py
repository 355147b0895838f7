"""The answer harness: question sets, the real answer pipeline run on each question, and
the answer-level figures.

A question set is JSONL, one ``{"question", "expected_ids", "kind", "note"}`` a line.
``kind`` is ``single``, ``multi`` or ``unanswerable``; when it is missing it is inferred
from the expected ids (none: unanswerable, two or more: multi, else single), so older
files with only ``question`` and ``expected_ids`` (or ``ids``) still load.

A chat follow-up is a line with ``"history": ["first question", ...]``: those questions
are asked first, in one conversation, and the line's question is asked after them with
the real answers as its history. Its ``kind`` may then name what answers it: ``focus``
(the paper the conversation is about), ``other`` (a different paper) or ``none`` (no
abstract: it should be abstained on). ``split`` (e.g. ``calibrate`` / ``evaluate``)
lets a file hold calibration and evaluation questions apart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..progress import Progress, report
from ..rewrite import has_dangling_opening
from .jsonl import read_jsonl
from .metrics import percentile

KINDS = ("single", "multi", "unanswerable")
FOLLOW_UP_KINDS = ("focus", "other", "none")  # what answers a follow-up (see the module docstring)
SHOWN_SEARCH_IDS = 5  # search results listed per question in the details


def infer_kind(expected_ids: Sequence[str]) -> str:
    """No expected paper: unanswerable; two or more: multi; else single."""
    if not expected_ids:
        return "unanswerable"
    return "multi" if len(set(expected_ids)) >= 2 else "single"


@dataclass
class AnswerCase:
    question: str
    expected_ids: list[str]
    kind: str = ""  # inferred from expected_ids when empty
    note: str = ""
    history: list[str] = field(default_factory=list)  # questions asked before this one, in one chat
    follow_up: str = ""  # focus | other | none, for a follow-up
    split: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or infer_kind(self.expected_ids)


def load_questions(path: Path, split: str | None = None) -> list[AnswerCase]:
    """JSONL of {"question", "expected_ids" ("ids" accepted too), "kind", "note"}.

    ``kind`` is optional (inferred); a given kind must be one of :data:`KINDS` (or, for a
    line with a ``history``, :data:`FOLLOW_UP_KINDS`) and agree with the ids on
    answerability: unanswerable (``none``) exactly when there is no expected id. `split`
    keeps only the lines of that split.
    """
    if not Path(path).is_file():
        raise InputError(f"no such file: {path}")
    cases = []
    for number, row in enumerate(read_jsonl(Path(path)), start=1):
        question = str(row.get("question") or "").strip()
        if not question:
            raise InputError(f"{path}: record {number} has no `question`")
        ids = row.get("expected_ids", row.get("ids", []))
        if isinstance(ids, str):
            ids = [ids]
        ids = [str(i) for i in ids or []]
        history = row.get("history") or []
        if isinstance(history, str):
            history = [history]
        history = [str(h).strip() for h in history if str(h).strip()]
        kind = str(row.get("kind") or "").strip().lower()
        follow_up = ""
        if history and kind in FOLLOW_UP_KINDS:
            follow_up, kind = kind, ("unanswerable" if kind == "none" else "")
        allowed = KINDS + (FOLLOW_UP_KINDS if history else ())
        if kind and kind not in KINDS:
            raise InputError(f"{path}: record {number}: kind must be one of {', '.join(allowed)}, not {kind!r}")
        if (follow_up or kind) and (follow_up == "none" or kind == "unanswerable") != (not ids):
            expected = "no expected ids" if kind == "unanswerable" else "at least one expected id"
            raise InputError(f"{path}: record {number}: kind {follow_up or kind!r} needs {expected}")
        case = AnswerCase(question, ids, kind, str(row.get("note") or ""), history, follow_up, str(row.get("split") or ""))
        if split is None or case.split == split:
            cases.append(case)
    return cases


@dataclass
class AnswerOutcome:
    question: str
    expected_ids: list[str]
    abstained: bool
    cited_ids: list[str]
    supported: list[bool]
    seconds: float
    error: str | None = None
    support: list[float] = field(default_factory=list)  # the verifier's score of each citation
    kind: str = ""  # inferred from expected_ids when empty
    search_ids: list[str] = field(default_factory=list)  # the answer's retrieved papers, in search order
    sentences: list[str] = field(default_factory=list)  # the displayed sentences, without markers
    mode: str = ""  # generated | composed | extractive | abstained
    follow_up: str = ""  # focus | other | none, for a follow-up (AnswerCase.follow_up)

    def __post_init__(self) -> None:
        self.kind = self.kind or infer_kind(self.expected_ids)

    @property
    def off_topic(self) -> bool:
        return not self.expected_ids

    @property
    def cites_expected(self) -> bool:
        """The answer cites at least one expected paper."""
        return not self.error and bool(set(self.cited_ids) & set(self.expected_ids))

    @property
    def search_rank(self) -> int | None:
        """1-based rank of the first expected paper in the search results, None if absent."""
        expected = set(self.expected_ids)
        return next((rank for rank, pid in enumerate(self.search_ids, start=1) if pid in expected), None)

    def searched_within(self, k: int) -> bool:
        rank = self.search_rank
        return rank is not None and rank <= k

    @property
    def correct(self) -> bool:
        """Off-topic: abstaining is correct. Otherwise: an answer citing an expected paper."""
        if self.error:
            return False
        if self.off_topic:
            return self.abstained
        return not self.abstained and self.cites_expected

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "kind": self.kind,
            "follow_up": self.follow_up,
            "expected_ids": self.expected_ids,
            "abstained": self.abstained,
            "search_ids": self.search_ids[:SHOWN_SEARCH_IDS],
            "cited_ids": self.cited_ids,
            "supported": self.supported,
            "support": [round(s, 4) for s in self.support],
            "correct": self.correct,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "mode": self.mode,
            "sentences": self.sentences,
        }


def summarize_answers(outcomes: Sequence[AnswerOutcome]) -> dict:
    """The answer-level figures.

    - correct_paper_rate: share of questions handled correctly: on-topic ones answered
      with at least one expected paper cited, off-topic ones (no expected ids) abstained.
    - citation_precision: supported citations / all citations, over answered questions
      (with the current verifier, unsupported sentences are dropped before they are
      cited, so this is 1.0 unless that changes); mean_support: the verifier's mean score.
    - abstention_rate: share of all questions abstained on (with the on/off-topic split).
    - Over answerable questions (those with expected ids): expected_cited_rate, the answer
      cites an expected paper; search_recall@1 / @5, the answer's own search results hold
      an expected paper at rank 1 / in the top 5 (a hit rate: one expected paper is
      enough), so answers citing worse than search ranks show as a gap between the two;
      answerable_wrongly_abstained_rate.
    - unanswerable_abstained_rate: over questions without expected ids.
    - dangling_opening_rate: share of displayed sentences that open by pointing back at
      an abstract the reader has not seen ("However, …", "This …"); modes: answers per mode.
    - multi_two_plus_rate: over questions with 2+ expected papers, the answer cites 2+
      distinct papers (multi_two_plus_expected_rate: 2+ distinct expected papers).
    - follow_up_correct: for follow-ups, the share handled correctly per kind of
      follow-up (focus, other, none).
    - latency p50/p95 in seconds, per question, end to end (a follow-up's own answer).
    """
    on_topic = [o for o in outcomes if not o.off_topic]
    off_topic = [o for o in outcomes if o.off_topic]
    multi = [o for o in outcomes if len(set(o.expected_ids)) >= 2]
    shown = [sentence for o in outcomes if not o.abstained for sentence in o.sentences]
    citations = [s for o in outcomes if not o.abstained for s in o.supported]
    supports = [s for o in outcomes if not o.abstained for s in o.support]
    latencies = [o.seconds for o in outcomes]

    def share(items: Sequence[AnswerOutcome], test: Callable[[AnswerOutcome], bool]) -> float | None:
        return round(sum(1 for o in items if test(o)) / len(items), 4) if items else None

    return {
        "questions": len(outcomes),
        "on_topic": len(on_topic),
        "off_topic": len(off_topic),
        "kinds": dict(Counter(o.kind for o in outcomes)),
        "multi_questions": len(multi),
        "correct_paper_rate": share(outcomes, lambda o: o.correct),
        "on_topic_correct_rate": share(on_topic, lambda o: o.correct),
        "off_topic_abstained_rate": share(off_topic, lambda o: o.abstained),
        "expected_cited_rate": share(on_topic, lambda o: o.cites_expected),
        "search_recall@1": share(on_topic, lambda o: o.searched_within(1)),
        "search_recall@5": share(on_topic, lambda o: o.searched_within(5)),
        "unanswerable_abstained_rate": share(off_topic, lambda o: o.abstained),
        "answerable_wrongly_abstained_rate": share(on_topic, lambda o: o.abstained),
        "multi_two_plus_rate": share(multi, lambda o: len(set(o.cited_ids)) >= 2),
        "multi_two_plus_expected_rate": share(multi, lambda o: len(set(o.cited_ids) & set(o.expected_ids)) >= 2),
        # Of the papers answers to answerable questions cite, the share that are expected ones
        # (low: answers pad with loosely related papers).
        "cited_expected_share": round(
            sum(len(set(o.cited_ids) & set(o.expected_ids)) for o in on_topic) / max(1, sum(len(set(o.cited_ids)) for o in on_topic)), 4
        ),
        "citation_precision": round(sum(citations) / len(citations), 4) if citations else None,
        "citations": len(citations),
        "mean_support": round(sum(supports) / len(supports), 4) if supports else None,
        "abstention_rate": share(outcomes, lambda o: o.abstained),
        "errors": sum(1 for o in outcomes if o.error),
        "dangling_opening_rate": round(sum(map(has_dangling_opening, shown)) / len(shown), 4) if shown else None,
        "modes": dict(Counter(o.mode for o in outcomes if o.mode)),
        "follow_up_correct": {
            kind: {"rate": share(group, lambda o: o.correct), "of": len(group)}
            for kind in FOLLOW_UP_KINDS
            if (group := [o for o in outcomes if o.follow_up == kind])
        },
        "latency_p50": round(percentile(latencies, 50), 3),
        "latency_p95": round(percentile(latencies, 95), 3),
    }


def search_ids(result) -> list[str]:
    """The paper ids the answer retrieved, in search order, each once.

    An abstaining answer lists its hits by similarity; every hit keeps its search rank,
    so the search order is restored from it when all hits carry one.
    """
    hits = list(getattr(result, "hits", None) or [])
    if all(isinstance(getattr(h, "rank", None), int) and h.rank > 0 for h in hits):
        hits = sorted(hits, key=lambda h: h.rank)  # stable: ties keep their order
    ids: list[str] = []
    for hit in hits:
        pid = str(hit.paper.id)
        if pid not in ids:
            ids.append(pid)
    return ids


def evaluate_answers(
    library, cases: Sequence[AnswerCase], progress: Progress | None = None, answer: Callable | None = None
) -> tuple[dict, list[AnswerOutcome]]:
    """Run every question through the answer pipeline (``answer_question`` by default;
    ``answer`` replaces it, with the same call signature).

    The pipeline's result must expose ``abstained``, ``citations`` (each with
    ``paper_id`` and ``supported``) and may expose ``hits`` (each with ``paper.id`` and
    ``rank``). A question that raises counts as wrong, not fatal.
    """
    if answer is None:
        from ..answer import answer_question as answer  # imported late: the LLM stack is heavy

    outcomes = []
    for number, case in enumerate(cases, start=1):
        report(progress, number - 1, len(cases), "questions")
        started = time.perf_counter()
        try:
            history = []
            for earlier in case.history:  # the conversation so far, answered for real
                history.append(answer(library, earlier, history=list(history) or None).to_turn())
            started = time.perf_counter()
            result = answer(library, case.question, history=history or None)
        except Exception as exc:  # one failing question must not lose the others' figures
            error = f"{type(exc).__name__}: {exc}"
            outcomes.append(
                AnswerOutcome(
                    case.question, case.expected_ids, False, [], [], time.perf_counter() - started, error, kind=case.kind,
                    follow_up=case.follow_up,
                )
            )
            continue
        elapsed = time.perf_counter() - started
        citations = list(getattr(result, "citations", []) or [])
        abstained = bool(getattr(result, "abstained", False))
        outcomes.append(
            AnswerOutcome(
                case.question,
                case.expected_ids,
                abstained,
                [str(c.paper_id) for c in citations],
                [bool(getattr(c, "supported", True)) for c in citations],  # verified citations are supported
                elapsed,
                support=[float(getattr(c, "support", 0.0) or 0.0) for c in citations],
                kind=case.kind,
                search_ids=search_ids(result),
                sentences=[sentence for sentence, _ in getattr(getattr(result, "cited", None), "sentences", None) or []],
                mode=str(getattr(result, "mode", "") or ""),
                follow_up=case.follow_up,
            )
        )
    return summarize_answers(outcomes), outcomes
