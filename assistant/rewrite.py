"""Abstract sentences that stand on their own, and names for the papers they come from.

An abstract's sentences lean on each other and on its authors: "We propose …",
"However, …", "To this end, …", "This paper studies …". Lifted into an answer or a
summary beside other papers' sentences, they read as nonsense. The rewrites here are
few and mechanical, so a rewritten sentence says exactly what its source says (the
verifier still checks it against the source):

- a leading connective or frame is dropped ("However, ", "To this end, ", "In this paper, ");
- "this paper/work/study" becomes the paper's name;
- first person becomes the authors ("we" → "the authors", "our" → "the authors'");
- a sentence whose subject points back to an earlier one ("This is …", "It …", "These
  results …") cannot be repaired without inventing its referent: it is refused (None),
  and callers pick another sentence.
"""

from __future__ import annotations

import re

# Openings that point back to an earlier sentence of the abstract.
DANGLING_OPENING = re.compile(
    r"^(?:this|these|that|those|it|its|they|their|them|such|both|here|there|thus|hence|however|moreover|"
    r"furthermore|additionally|besides|also|then|therefore|consequently|accordingly|nevertheless|nonetheless|"
    r"meanwhile|instead|finally|specifically|notably|importantly|overall|similarly|likewise|further|"
    r"to this end|to that end|in this (?:paper|work|study|article|report)|in addition|as a result|"
    r"in contrast|on the other hand|in particular|in summary|in conclusion|to do so|to address (?:this|these|that|those)|"
    r"the former|the latter|the proposed|our|we|us)\b",
    re.IGNORECASE,
)

# Connectives and frames that can go without changing the claim.
_DROPPABLE = re.compile(
    r"^(?:(?:however|moreover|furthermore|additionally|in addition|besides|also|thus|hence|therefore|"
    r"consequently|accordingly|as a result|nevertheless|nonetheless|meanwhile|finally|specifically|notably|"
    r"importantly|overall|in particular|in summary|in conclusion|in sum|in short|in brief|to sum up|to summari[sz]e|"
    r"taken together|all in all|in contrast|on the other hand|similarly|"
    r"likewise|further|to this end|to that end|to do so|here|for this(?: purpose| reason)?|for example|for instance|"
    r"as such|in practice|in this context|initially|to bridge (?:this|the) gap|motivated by (?:this|these|that|those)(?: \w+){0,3}|"
    r"in this (?:paper|work|study|article|report|letter|note)|"
    r"next|first|second|third|lastly|secondly|thirdly|subsequently|unfortunately|fortunately|surprisingly|interestingly|"
    r"to (?!this end|that end)\w+ (?:this|these|that|those|such|both) (?:\w+ ){0,2}?\w+|"
    r"in the present (?:paper|work|study)|"
    r"to (?:address|tackle|overcome|solve|mitigate|alleviate|bridge|fill|close|remedy|resolve|handle) "
    r"(?:this|these|that|those|the above|such) (?:\w+ ){0,2}?(?:issues?|problems?|challenges?|limitations?|gaps?|"
    r"shortcomings?|drawbacks?|questions?|bottlenecks?|difficult(?:y|ies)|concerns?))\s*,\s*)+",
    re.IGNORECASE,
)
# "Here we …", "In this paper we …", "Yet images …": a frame or conjunction without a comma.
_FRAME_BEFORE_WE = re.compile(
    r"^(?:(?:here|in this (?:paper|work|study|article|report|letter|note))\s+(?=we\b)|(?:yet|but|and|indeed|hence|thus|also)\s+(?=\w))",
    re.IGNORECASE,
)
# Mid-sentence references to something an earlier sentence said ("this problem").
_REFERS_BACK = re.compile(
    r"\b(?:this|these|those|the above|the aforementioned|aforementioned)\s+(?!paper|work|study|article|report|letter|note)\w+"
    r"|\bsuch (?!as\b|that\b)\w+",
    re.IGNORECASE,
)
_THIS_PAPER = re.compile(
    r"\b(?:this|the present|the current|our) (?:paper|work|study|article|report|technical report|survey|letter|note|manuscript|thesis)\b",
    re.IGNORECASE,
)
_THIS_THING = re.compile(
    r"^(?:this|these|our) (?:(?:new|novel|proposed|simple|unified|resulting) )?"
    r"(?P<noun>methods?|approach(?:es)?|frameworks?|models?|techniques?|systems?|algorithms?|architectures?|"
    r"benchmarks?|datasets?|tools?|librar(?:y|ies)|pipelines?|strategy|strategies|designs?|modules?|"
    r"solutions?|formulations?|procedures?|networks?|agents?|paradigms?|recipes?|estimators?|metrics?|losses?|"
    r"objectives?|schemes?|mechanisms?)\b",
    re.IGNORECASE,
)
_OUR_PROPOSED = re.compile(r"\bour(?= (?:proposed|new|novel)\b)", re.IGNORECASE)
_WE = re.compile(r"\b(we|us|our|ours|ourselves)\b", re.IGNORECASE)
_STILL_DANGLING = re.compile(r"^(?:this|these|that|those|it|its|they|their|them|such|both|the former|the latter|the proposed)\b", re.IGNORECASE)
_SHORT_NAME = re.compile(r"^\s*(?P<name>[^:]{2,40}?)\s*:\s+\S")
_ALWAYS_LOWER = frozenset("a an the most many some several existing current recent prior previous modern".split())


def short_name(title: str) -> str:
    """How prose names a paper: its system name when the title has one ("MiniCPM:
    Unveiling …" → "MiniCPM"), else the whole title."""
    match = _SHORT_NAME.match(title)
    if match and len(match.group("name").split()) <= 4:
        return match.group("name").strip()
    return title.strip()


def has_dangling_opening(sentence: str) -> bool:
    """True when the sentence opens by pointing back at something it does not say."""
    return bool(DANGLING_OPENING.match(sentence.strip().lstrip("\"'“(")))


def refers_back(sentence: str) -> bool:
    """True when the sentence leans on an earlier one mid-way ("… focuses on this problem")."""
    return bool(_REFERS_BACK.search(sentence))


_WE_NEXT = re.compile(r"\b([Ww]e) (?:next|then|further|finally|lastly|subsequently) (?=\w)")


def self_contained(sentence: str, name: str) -> str | None:
    """The sentence rewritten to stand on its own, with `name` (e.g. "*MiniCPM*") for
    "this paper"; None when it points back at something only its abstract says."""
    text = " ".join(sentence.split())
    text = _DROPPABLE.sub("", text)
    text = _FRAME_BEFORE_WE.sub("", text)
    if not text:
        return None
    text = _THIS_PAPER.sub(name, text)
    thing = _THIS_THING.match(text)
    if thing:
        text = f"The {thing.group('noun').lower()} of {name}" + text[thing.end() :]
    text = _OUR_PROPOSED.sub(lambda m: "the" if m.group(0)[0].islower() else "The", text)
    text = _WE_NEXT.sub(r"\1 ", text)  # "we next prove": "next" after what, out of its abstract?
    text = _first_person(text)
    text = text[0].upper() + text[1:]
    if text.startswith("The proposed ") and name in text:
        text = "The " + text[len("The proposed ") :]  # "The proposed architecture of *X*": named, nothing to point back to
    if _STILL_DANGLING.match(text):
        return None
    return text


def lower_first(sentence: str, context: str = "") -> str:
    """The sentence with its first word lowercased so it can follow "… that" or a comma,
    unless the word is a name: an acronym or CamelCase word ("BERT", "GPipe"), or a word
    the context capitalizes mid-sentence too ("Gemma", "Adam")."""
    first, _, rest = sentence.partition(" ")
    bare = first.strip("\"'“(")
    word = re.match(r"[A-Za-z]+", bare)
    if not word or not bare[0].isupper() or (len(word.group()) > 1 and not word.group()[1:].islower()):
        return sentence
    if rest[:1].isupper():
        return sentence  # "Graph Neural Networks …": part of a name
    if word.group().lower() not in _ALWAYS_LOWER and re.search(rf"(?<![.!?]\s)(?<!^)\b{re.escape(word.group())}\b", context[1:]):
        return sentence  # capitalized mid-sentence in its abstract: a name
    first = first.replace(bare, bare[0].lower() + bare[1:], 1)
    return f"{first} {rest}" if rest else first


def _first_person(text: str) -> str:
    """we → the authors (then they), our → the authors' (then their), us → them."""
    said = {"authors": False}

    def swap(match: re.Match[str]) -> str:
        word = match.group(1).lower()
        first = match.start() == 0
        if word == "we":
            out = "they" if said["authors"] else "the authors"
        elif word == "our":
            out = "their" if said["authors"] else "the authors'"
        elif word == "ours":
            out = "theirs"
        elif word == "ourselves":
            out = "themselves"
        else:  # us
            out = "them" if said["authors"] else "the authors"
        said["authors"] = True
        return out.capitalize() if first else out

    return _WE.sub(swap, text)
