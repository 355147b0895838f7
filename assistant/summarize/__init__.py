"""Topic summaries and one-paper TL;DRs, cited sentence by sentence.

- :mod:`.topic` orchestrates a topic summary (retrieval, outliers, themes, map, reduce,
  assembly); :mod:`.writer` holds its map and reduce steps (the model's key points and
  overview, each sentence verified);
- :mod:`.themes` clusters papers and names each cluster by a key phrase its papers share;
- :mod:`.statements` says what one paper contributes: a sentence chosen for the topic and
  its role, made self-contained, named and verified;
- :mod:`.paper` summarizes one paper (roles, TL;DR, related papers);
- :mod:`.markdown` renders both, with reference lists;
- :mod:`.cleanup` cleans generated text before verification.

Prompts go through :mod:`assistant.generation`, like answers. Correctness never depends
on the model: with a model that writes nothing useful, the output is entirely quoted
evidence with correct citations.
"""

from ..text import grounded
from .cleanup import clean_line, complete_sentences, drop_unfinished, sanitize
from .markdown import paper_markdown, references_block, topic_markdown
from ..roles import assign_roles, representative_sentence
from .paper import PaperSummary, summarize_paper
from .themes import Theme, WordStats, cluster_papers, theme_count, theme_headings, word_stats
from .topic import TopicSummary, summarize_topic
from .writer import Writer

__all__ = [
    "PaperSummary",
    "Theme",
    "TopicSummary",
    "WordStats",
    "Writer",
    "assign_roles",
    "clean_line",
    "cluster_papers",
    "complete_sentences",
    "drop_unfinished",
    "grounded",
    "paper_markdown",
    "references_block",
    "representative_sentence",
    "sanitize",
    "summarize_paper",
    "summarize_topic",
    "theme_count",
    "theme_headings",
    "topic_markdown",
    "word_stats",
]
