"""What the model wrote, cleaned before verification: prompt markup, bullets, quotes,
cut-off sentences and repeats removed, so only finished prose reaches the verifier."""

from __future__ import annotations

import re

from ..citations import CheckedSentence
from ..records import normalize_title
from ..text import split_sentences

_MARKUP = re.compile(r"<[^<>\n]{0,80}>|\[/?INST\]", re.IGNORECASE)
LEADING_JUNK = re.compile(r"^[^\w(]+")


def sanitize(raw: str) -> str:
    """Generated text without prompt markup a small model echoes (<<SYS>>, </evidence>),
    list bullets or quote marks."""
    text = re.sub(r">{2,}", ">", re.sub(r"<{2,}", "<", raw))
    text = _MARKUP.sub(" ", text).replace("<", " ").replace(">", " ")
    text = re.sub(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+", "", text)
    text = text.replace('"', " ").replace("“", " ").replace("”", " ")
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def clean_line(raw: str) -> str:
    """A generated key point without quotes, stray markers or a repeated label."""
    line = " ".join(sanitize(raw).split())
    line = re.sub(r"^(key point|tl;dr|overview)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", "", line)
    line = line.strip().strip('"“”').strip()
    line = re.sub(r'"\s*"', " ", line)  # two quoted sentences glued together
    line = line.replace('"', "")
    return " ".join(line.split())


def complete_sentences(text: str) -> list[str]:
    """Sentences that were finished (the last one may have been cut by the token limit)."""
    sentences = split_sentences(text)
    if sentences and not sentences[-1].rstrip("\"')]").endswith((".", "!", "?")):
        sentences = sentences[:-1]
    return [s for s in sentences if len(s.split()) >= 4]


def drop_unfinished(text: str) -> str:
    """Generated text without a trailing sentence cut off by the token limit."""
    stripped = text.rstrip()
    if not stripped or re.search(r"[.!?](\s*\[\d+(?:\s*[,;]\s*\d+)*\])*[\"')\]]?$", stripped):
        return stripped
    cut = max(stripped.rfind(". "), stripped.rfind("! "), stripped.rfind("? "), stripped.rfind(".\n"))
    if cut < 0:
        return ""
    return stripped[: cut + 1]


def near_duplicate(key: str, seen: set[str]) -> bool:
    """Same sentence up to punctuation, one inside the other, or 80% the same words."""
    if key in seen:
        return True
    words = set(key.split())
    for other in seen:
        if len(key) > 20 and len(other) > 20 and (key in other or other in key):
            return True
        other_words = set(other.split())
        if words and other_words and len(words & other_words) / len(words | other_words) >= 0.8:
            return True
    return False


def unique(items: list[CheckedSentence], seen: set[str]) -> list[CheckedSentence]:
    """Drop sentences already used, or nearly (a small model repeats itself and its evidence)."""
    kept = []
    for item in items:
        key = normalize_title(item.text)
        if key and not near_duplicate(key, seen):
            seen.add(key)
            kept.append(item)
    return kept
