"""Rhetorical roles of abstract sentences (problem, method, result, data): which sentence
of an abstract states what. Paper TL;DRs and the literature table both read abstracts by
role; abstracts signal their moves in stock words, so cue phrases and position add to the
embedding similarity with a description of each role.

Two callers, two needs. A paper TL;DR always wants its three sentences (the best
candidates, whatever they are). The literature table must leave a cell empty when the
abstract does not say: a :class:`RoleRule` per role states how strong a sentence must be
to fill it (a minimum score, and a cue phrase unless the score alone is convincing), and
the "data" role fills only from a sentence that names a dataset, benchmark or corpus."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The three roles of a paper TL;DR (summarize/paper.py embeds exactly these, in this order).
ROLE_PROMPTS = {
    "problem": "Existing methods suffer from a limitation; this remains a challenging open problem.",
    "method": "In this paper, we propose a new method that introduces a novel approach.",
    "result": "Experiments show that our method outperforms state-of-the-art baselines and improves accuracy.",
}
# The literature table reads one more role: the data a paper trains or evaluates on.
DATA_PROMPT = "We train and evaluate on standard benchmark datasets such as ImageNet, COCO and GLUE."
TABLE_ROLE_PROMPTS = {**ROLE_PROMPTS, "data": DATA_PROMPT}

# Cue phrases: abstracts signal their moves in stock words; a cue adds to the similarity.
_ROLE_CUES = {
    "problem": re.compile(
        r"\b(however|challeng\w*|limitation\w*|limited|remains?|difficult\w*|problem\w*|suffer\w*|fail\w*|lack\w*|"
        r"despite|bottleneck\w*|costly|expensive|unclear|unknown|issue\w*|struggl\w*|hinder\w*|open question)\b",
        re.IGNORECASE,
    ),
    "method": re.compile(
        r"\b(we (propose|introduce|present|develop|design|describe|formulate|derive|study|investigate)|"
        r"this (paper|work) (proposes|introduces|presents|develops)|our (method|approach|framework|model|algorithm)|"
        r"(is|are) proposed|(a|an) (novel|new) (method|approach|framework|model|algorithm|architecture))\b",
        re.IGNORECASE,
    ),
    "result": re.compile(
        r"\b(outperform\w*|results? (show|demonstrate|indicate|suggest)\w*|experiment\w*|empirical\w*|achiev\w*|"
        r"state[- ]of[- ]the[- ]art|improv\w*|surpass\w*|speed-?up|accuracy|we (show|demonstrate|find|observe))\b|\d+(\.\d+)?\s?(%|x\b|×)",
        re.IGNORECASE,
    ),
}

# Data: a sentence names what the work trains or evaluates on. A generic mention is not
# enough ("the data distribution is well-separated", "practical networks and datasets"):
# it takes a dataset's name, or a dataset word where the work uses it ("evaluated on
# three datasets", "a new corpus of 1,500 pairs").
_KNOWN_DATASETS = (
    r"ImageNet(?:-\w+)?|MS[- ]?COCO|COCO|CIFAR(?:-?\d+)?|MNIST|Fashion-MNIST|SVHN|CelebA(?:-HQ)?|FFHQ|LSUN|LAION(?:-\w+)?|"
    r"Cifar-?\d+|Pascal VOC|ADE20K|Cityscapes|KITTI|nuScenes|Waymo|ShapeNet|ScanNet|Objaverse|ModelNet\d*|Kinetics(?:-\d+)?|"
    r"UCF-?101|HMDB-?51|AudioSet|LibriSpeech|Common Voice|VoxCeleb\d?|"
    r"GLUE|SuperGLUE|SQuAD(?:\s?v?\d(?:\.\d)?)?|MMLU|GSM8K|HumanEval|MBPP|HellaSwag|TruthfulQA|WinoGrande|PIQA|"
    r"BIG-?Bench(?: Hard)?|MT-Bench|AlpacaEval|LongBench|WikiText(?:-\d+)?|C4|The Pile|Penn Treebank|PTB|WMT\s?'?\d*|"
    r"MS MARCO|BEIR|Natural Questions|TriviaQA|VQAv2|GQA|OGB|Cora|Citeseer|PubMed|QM9|OpenWebText|RedPajama|SlimPajama"
)
_DATA_WORD = r"(data ?sets?|benchmarks?|corpus|corpora|suites?|testbeds?)"
_USES = r"(train(ed|ing)?|pre-?trained|fine-?tuned|evaluat(ed|ion|ions)|test(ed|s)?|validat(ed|ion)|experiments?|results?|performance|accuracy)"
_DATA_CUE = re.compile(
    # a named dataset or benchmark (names are case-sensitive: "coco" is not COCO)
    rf"(?<![\w-])({_KNOWN_DATASETS})(?![\w-])|\b[A-Z][A-Za-z0-9]*(Bench|QA|Eval)\b"
    # "experiments on KITTI", "results (of our method) on Cifar-10": a name after the use
    rf"|(?i:\b{_USES}\b[^.;]{{0,30}}?\b(on|across|over) )(?=[A-Z0-9][\w-]*[A-Z0-9])[\w-]+"
    # "evaluated on three datasets", "we benchmark", "a new corpus of 1,500 pairs"
    rf"|(?i:\b{_USES} (on|across|over|using|with)\b[^.;]{{0,40}}?\b{_DATA_WORD}\b)"
    rf"|(?i:\bwe benchmark\b|\b(on|across|over) (\w+[ -]){{0,3}}{_DATA_WORD}\b)"
    rf"|(?i:\b(new|our|novel|large-scale|curated|collected|annotated|public|publicly available|real-world|synthetic|gold[- ]standard) {_DATA_WORD}\b)"
    rf"|(?i:\b{_DATA_WORD} (of|containing|consisting of|comprising|with) (over |about |more than |nearly )?\d)"
    r"|(?i:\b(collected|annotated|curated|gathered|recorded) (a |the )?(data|dataset|images|videos|samples|recordings|pairs)\b)",
)
_ROLE_CUES["data"] = _DATA_CUE

_ROLE_CUE_WEIGHT = 0.15
_ROLE_POSITION = {"problem": -0.1, "method": 0.0, "result": 0.1, "data": 0.0}  # prior per unit of relative position (-0.5..0.5)


@dataclass(frozen=True)
class RoleRule:
    """When a sentence is good enough to fill a role: its score is at least `min_score`,
    and it carries a cue phrase of the role unless its score reaches `cue_free_score`.
    The default rule accepts every sentence (the TL;DR's behaviour)."""

    min_score: float = float("-inf")
    cue_free_score: float = float("-inf")
    extra_cue: re.Pattern | None = None  # more stock phrases that count as the role's cue, for this caller only
    veto: re.Pattern | None = None  # a sentence saying this does another role's job ("to address this problem, we …")
    veto_without_cue: re.Pattern | None = None  # another role's job unless the sentence also carries this role's cue

    def accepts(self, score: float, cue: bool, sentence: str = "") -> bool:
        if self.veto is not None and self.veto.search(sentence):
            return False
        if self.veto_without_cue is not None and not cue and self.veto_without_cue.search(sentence):
            return False
        return score >= self.min_score and (cue or score >= self.cue_free_score)


# Stock phrases the TL;DR's cues miss; the table, which must decide whether a sentence
# fills a role at all, counts them too ("we put forward", "this paper explores", "we prove").
_TABLE_EXTRA_CUES = {
    "problem": re.compile(
        r"\b(gap|cannot|can not|rarely|poorly|not (well|yet)|needs?|requires?|demand\w*|obstacle\w*|drawback\w*|"
        r"shortcoming\w*|inefficien\w*|prohibitive\w*|trade-?off)\b",
        re.IGNORECASE,
    ),
    "method": re.compile(
        r"\b(we|this (paper|work|study|research|survey|article)|in this (paper|work|study|survey|article)|here)\b[^.;]{0,40}?"
        r"\b(propos\w*|put forward|introduc\w*|present\w*|develop\w*|design\w*|explor\w*|consider\w*|identif\w*|review\w*|"
        r"analy[sz]\w*|discuss\w*|focus\w*|aims?|take|build|extend\w*|leverag\w*|use|employ\w*|appl(y|ies)|combin\w*|formulat\w*|model)\b"
        r"|\b(dubbed|called|named|termed|coined)\b|\b(by|via) (proposing|introducing|using|leveraging|combining)\b",
        re.IGNORECASE,
    ),
    "result": re.compile(
        r"\b(we (prove|establish|identify|find|found|observe|show|demonstrate|report)|(shows?|showing|proves?|reveals?|confirms?|verif(y|ies)) that|"
        r"leads? to|yield\w*|faster|better|reduc\w+ .{0,40}\bby|outperform\w*|gains?|findings?|bounds?|guarantee\w*|converge\w*)\b",
        re.IGNORECASE,
    ),
}

# A sentence that answers a problem is not the problem: "A promising approach to address
# these problems is quantization", "To tackle this issue, we put forward …".
_PROBLEM_VETO = re.compile(
    r"\b(we (propose|introduce|present|put forward|develop|design)|propos(e|es|ed|ing)|(to|we|can|that|which) (address|tackle|solve|overcome|alleviate|mitigate|remedy|bridge)|"
    r"address(es|ing)? (these|this|the|such|both)|approach(es)? to (address|tackle|solve)|(first|second|proposed) method|our (method|approach))\b",
    re.IGNORECASE,
)

# A result is not what the paper proposes ("we introduce a novel gradient update …", unless
# it also says what that achieved) nor what the field has done ("many pruning algorithms
# have been proposed with impressive empirical success").
_METHOD_STATEMENT = re.compile(
    r"\b(we (propose|introduce|present|put forward|develop|design)|this (paper|work) (proposes|introduces|presents))\b", re.IGNORECASE
)
_FIELD_STATEMENT = re.compile(r"\b(have|has) been (widely )?(proposed|developed|studied|introduced|explored)\b", re.IGNORECASE)
# The data a paper uses is not the limitation it sets out from ("However, existing pruning
# approaches heavily rely on training data, …").
_DATA_VETO = re.compile(r"^\W*(however|but|although|despite|unfortunately)\b", re.IGNORECASE)

# The literature table's rules: an empty cell is better than a weak sentence. Scores are
# cosine to the role prompt + 0.15 for a cue + the position prior; the levels were read
# off the shipped corpus (a cue-less sentence must be closer to the prompt than nearly
# every cue-less sentence, and data needs its cue: no cue, no dataset named).
TABLE_RULES: dict[str, RoleRule] = {
    "problem": RoleRule(min_score=0.15, cue_free_score=0.45, extra_cue=_TABLE_EXTRA_CUES["problem"], veto=_PROBLEM_VETO),
    "method": RoleRule(min_score=0.05, cue_free_score=0.45, extra_cue=_TABLE_EXTRA_CUES["method"]),
    "result": RoleRule(
        min_score=0.15, cue_free_score=0.45, extra_cue=_TABLE_EXTRA_CUES["result"], veto=_FIELD_STATEMENT, veto_without_cue=_METHOD_STATEMENT
    ),
    "data": RoleRule(min_score=0.0, cue_free_score=float("inf"), veto=_DATA_VETO),
}


@dataclass(frozen=True)
class RoleChoice:
    """The sentence chosen for a role, where it sits in the abstract and how it scored."""

    role: str
    index: int
    sentence: str
    score: float
    cue: bool


def has_cue(role: str, sentence: str) -> bool:
    """True when the sentence carries one of the role's stock phrases."""
    return bool(_ROLE_CUES[role].search(sentence))


_NAMED_DATASET = re.compile(rf"(?<![\w-])({_KNOWN_DATASETS})(?![\w-])")


def named_dataset_spans(sentence: str) -> list[tuple[int, int]]:
    """Where well-known datasets and benchmarks are named in the sentence ("ImageNet")."""
    return [match.span() for match in _NAMED_DATASET.finditer(sentence)]


def cue_spans(role: str, sentence: str) -> list[tuple[int, int]]:
    """Where the role's cue phrases sit in the sentence (the data column quotes the
    clause around them)."""
    return [match.span() for match in _ROLE_CUES[role].finditer(sentence)]


def role_scores(
    sentences: Sequence[str],
    vectors: np.ndarray,
    role_vectors: np.ndarray,
    roles: Sequence[str],
    extra_cues: Mapping[str, re.Pattern] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, cues), each roles x sentences: similarity to the role description, plus
    cue phrases ("however", "we propose", "outperforms", "on ImageNet"; `extra_cues`
    count too), plus a position prior (problems come early in abstracts, results late)."""
    extra_cues = extra_cues or {}
    count = len(sentences)
    positions = np.linspace(-0.5, 0.5, count) if count > 1 else np.zeros(1)

    def cue(role: str, sentence: str) -> bool:
        extra = extra_cues.get(role)
        return has_cue(role, sentence) or bool(extra is not None and extra.search(sentence))

    cues = np.array([[1.0 if cue(role, s) else 0.0 for s in sentences] for role in roles]).reshape(len(roles), count)
    rows = [
        np.asarray(vectors) @ np.asarray(role_vectors[i]) + _ROLE_CUE_WEIGHT * cues[i] + _ROLE_POSITION[role] * positions * 2
        for i, role in enumerate(roles)
    ]
    return np.stack(rows).reshape(len(roles), count), cues.astype(bool)


def choose_roles(
    sentences: Sequence[str],
    vectors: np.ndarray,
    role_vectors: np.ndarray,
    *,
    roles: Sequence[str] | None = None,
    rules: Mapping[str, RoleRule] | None = None,
    shared: Collection[str] = (),
    penalty: np.ndarray | None = None,
) -> dict[str, RoleChoice]:
    """Best sentence per role (role_vectors[i] describes roles[i]; default the three
    TL;DR roles). Roles not in `shared` get distinct sentences (greedy over the best
    (role, sentence) pairs); a `shared` role may quote a sentence another role took (the
    sentence that states a result may also be the one naming the benchmark). A role whose
    rule accepts no sentence is absent: nothing in the abstract fills it. `penalty` (one
    value per sentence) is taken off every role's score, e.g. for sentences that do not
    stand on their own."""
    if not sentences:
        return {}
    roles = list(roles or ROLE_PROMPTS)
    rules = rules or {}
    extra = {role: rule.extra_cue for role, rule in rules.items() if rule.extra_cue is not None}
    scores, cues = role_scores(sentences, vectors, role_vectors, roles, extra)
    if penalty is not None:
        scores = scores - np.asarray(penalty, dtype=scores.dtype)[None, :]
    count = len(sentences)
    allowed = np.array(
        [
            [(rules.get(role) or RoleRule()).accepts(float(scores[r, s]), bool(cues[r, s]), sentences[s]) for s in range(count)]
            for r, role in enumerate(roles)
        ]
    ).reshape(len(roles), count)

    def choice(r: int, s: int) -> RoleChoice:
        return RoleChoice(roles[r], s, sentences[s], float(scores[r, s]), bool(cues[r, s]))

    chosen: dict[str, RoleChoice] = {}
    exclusive = [r for r, role in enumerate(roles) if role not in shared]
    taken: set[int] = set()
    # greedy over the best (role, sentence) pairs, each sentence used once
    for flat in np.argsort(-scores[exclusive], axis=None, kind="stable").tolist():
        row, s = divmod(flat, count)
        r = exclusive[row]
        if roles[r] in chosen or s in taken or not allowed[r, s]:
            continue
        chosen[roles[r]] = choice(r, s)
        taken.add(s)
        if len(chosen) == len(exclusive) or len(taken) == count:
            break
    for r, role in enumerate(roles):
        if role in shared:
            candidates = [s for s in np.argsort(-scores[r], kind="stable").tolist() if allowed[r, s]]
            if candidates:
                chosen[role] = choice(r, candidates[0])
    return {role: chosen[role] for role in roles if role in chosen}


def assign_roles(
    sentences: list[str],
    vectors: np.ndarray,
    role_vectors: np.ndarray,
    *,
    roles: Sequence[str] | None = None,
    rules: Mapping[str, RoleRule] | None = None,
    shared: Collection[str] = (),
    penalty: np.ndarray | None = None,
) -> dict[str, str]:
    """Best distinct sentence per role: similarity to the role description, plus cue
    phrases ("however", "we propose", "outperforms"), plus a position prior (problems
    come early in abstracts, results late). With `rules`, a role no sentence is good
    enough for is left out (see :func:`choose_roles`)."""
    chosen = choose_roles(sentences, vectors, role_vectors, roles=roles, rules=rules, shared=shared, penalty=penalty)
    return {role: item.sentence for role, item in chosen.items()}


def representative_sentence(
    sentences: list[str], vectors: np.ndarray, title_vector: np.ndarray | None = None, exclude: set[str] | None = None
) -> str:
    """The sentence closest to the title (itself a summary) and to the abstract's centroid."""
    if not sentences:
        return ""
    centroid = vectors.mean(axis=0)
    scores = vectors @ centroid
    if title_vector is not None:
        scores = scores + vectors @ title_vector
    order = np.argsort(-scores, kind="stable").tolist()
    for i in order:
        if not exclude or sentences[i] not in exclude:
            return sentences[i]
    return sentences[order[0]]
