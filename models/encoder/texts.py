"""A varied English sentence bank for synthetic speech, built offline from local text.

Sentences are harvested from the plain-text documentation Debian installs (/usr/share/doc) and the
VCTK prompt texts, keeping only sentences whose every word is in cmudict (so pocketsphinx can align
them); random word strings from the same vocabulary are added for phone coverage.
"""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

DOC_DIR = Path("/usr/share/doc")
MIN_WORDS, MAX_WORDS = 4, 14
MAX_FILE_BYTES = 400_000


def _doc_texts() -> Iterator[str]:
    for path in sorted(DOC_DIR.rglob("*")):
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", errors="ignore") as fh:
                    yield fh.read()
            elif path.suffix in ("", ".txt", ".md", ".Debian", ".markdown", ".rst"):
                yield path.read_text(errors="ignore")
        except (OSError, EOFError, UnicodeDecodeError):
            continue


def harvest(known: Callable[[str], bool], extra: list[str], limit: int, seed: int) -> list[str]:
    """Up to ``limit`` distinct sentences (lower case, letters only) whose words ``known`` accepts."""
    seen: set[str] = set()
    out: list[str] = []
    sources = list(extra) + list(_doc_texts())
    for text in sources:
        for raw in re.split(r"[.!?;:\n]\s", text):
            if not re.fullmatch(r"[A-Za-z ,'\-]+", raw.strip() or "#"):
                continue
            words = re.sub(r"[^a-z' ]+", " ", raw.lower()).split()
            if not MIN_WORDS <= len(words) <= MAX_WORDS or any(len(w) > 14 for w in words):
                continue
            sentence = " ".join(words)
            if sentence in seen or not all(known(w) for w in words):
                continue
            seen.add(sentence)
            out.append(sentence)
    rng = random.Random(seed)
    rng.shuffle(out)
    return out[:limit]


def random_strings(sentences: list[str], count: int, seed: int) -> list[str]:
    """Random 5-10 word strings from the sentences' vocabulary (rare phone contexts)."""
    rng = random.Random(seed)
    vocab = sorted({w for s in sentences for w in s.split()})
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 10))) for _ in range(count)]
