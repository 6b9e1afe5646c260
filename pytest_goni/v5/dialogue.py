"""The statefulness task family of the V5 seed as templated synthetic dialogues, with an oracle.

v5-gpt2-gates.md (lines 269-311) lists six prompt tests in three tiers and, in the evaluation suite
(line 255), "fact recall at 5/10/20/50 turns". Models of a few million parameters trained on a few
million tokens cannot answer English questions, so each test is a *template*: a fact stated in a
turn, distractor turns drawn from a real corpus (lines of the plays), a query turn, and the answer
scored as the next token. The templates are trained into every model compared, in the same batches,
so the comparison is about what each architecture keeps, not about instruction following.

Scoring is multiple choice over a closed answer set: the model's logits at the answer position,
restricted to the first tokens of the choices. Chance is 1 / number of choices, known exactly.

Every episode carries its label, and :func:`oracle_answer` re-derives the answer from the prompt
text alone (regular expressions over what the model sees). :func:`check_task` runs the oracle and
checks that the scored token really is the answer in the token stream; a task whose check fails
(a label misaligned by one position, as in the flip-flop task of the architecture-comparison seed's
repository) is reported INVALID, not as a model result.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Every pool's words start with distinct letters, so a byte-level tokenizer can score them too.
COLOURS = ["red", "blue", "green", "yellow", "white", "orange", "purple", "cyan"]
CITIES = ["Paris", "Rome", "London", "Madrid", "Berlin", "Vienna", "Athens", "Oslo"]
FRUITS = ["apples", "oranges", "pears", "grapes", "melons", "cherries", "lemons", "bananas"]
NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry"]
ROLES = ["chef", "doctor", "pilot", "farmer", "teacher", "sailor", "baker", "nurse"]
TOPICS = ["dogs", "cats", "horses", "birds", "ships", "rivers", "gardens", "mountains"]

#: The six prompt tests of the seed, in its order (tier 1: lines 271-282, tier 2: 286-296,
#: tier 3: 300-310).
TIERS = ("three_turn_memory", "contextual_correction", "interrupted_dialogue", "multi_fact_composition",
         "persona_consistency", "topic_threading")

#: Words that would let a distractor line look like a fact or a query to the oracle.
_TRIGGERS = re.compile(r"favourite|prefer|going to|\bis \d|you are|discuss|\?", re.IGNORECASE)

SPEAKER, LISTENER = "Anna", "Ben"
OTHERS = ("Cleo", "Dion")


@dataclass
class Episode:
    """One dialogue: ``prompt`` ends right before the answer; ``answer`` is one of ``choices``."""

    tier: str
    distance: int          # distractor turns between the (last) fact and the query
    prompt: str
    answer: str            # a word, scored with a leading space: " red"
    choices: list[str]


def distractor_lines(text: str, max_chars: int = 70) -> list[str]:
    """Corpus lines usable as distractor turns: short, plain, and free of the templates' cue words."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if 12 <= len(s) <= max_chars and not s.isupper() and not _TRIGGERS.search(s):
            out.append(s)
    if len(out) < 20:
        raise ValueError(f"the corpus gives only {len(out)} usable distractor lines (need >= 20)")
    return out


def _turns(rng: np.random.Generator, lines: Sequence[str], n: int) -> str:
    idx = rng.integers(0, len(lines), size=n)
    return "".join(f"{OTHERS[i % 2]}: {lines[j]}\n" for i, j in enumerate(idx))


def _pick(rng: np.random.Generator, pool: Sequence[str], k: int) -> list[str]:
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def make_episode(tier: str, distance: int, rng: np.random.Generator, lines: Sequence[str]) -> Episode:
    """One episode of ``tier`` with ``distance`` distractor turns before the query."""
    gap = _turns(rng, lines, distance)
    a, b = SPEAKER, LISTENER
    if tier == "three_turn_memory":
        c = _pick(rng, COLOURS, 1)[0]
        fact = f"{a}: My favourite colour is {c}.\n" * 3
        return Episode(tier, distance, f"{fact}{gap}{b}: What is your favourite colour?\n{a}: It is", c,
                       list(COLOURS))
    if tier == "contextual_correction":
        f1, f2 = _pick(rng, FRUITS, 2)
        prompt = f"{a}: I like {f1}. Actually, I prefer {f2}.\n{gap}{b}: What do you like?\n{a}: I like"
        return Episode(tier, distance, prompt, f2, list(FRUITS))
    if tier == "interrupted_dialogue":
        c = _pick(rng, CITIES, 1)[0]
        prompt = f"{a}: I'm going to {c}.\n{gap}{b}: Where are you going?\n{a}: I am going to"
        return Episode(tier, distance, prompt, c, list(CITIES))
    if tier == "multi_fact_composition":
        n1, n2 = _pick(rng, NAMES, 2)
        ages = rng.choice(np.arange(20, 60), size=2, replace=False)
        older = n1 if ages[0] > ages[1] else n2
        prompt = f"{a}: {n1} is {ages[0]}. {n2} is {ages[1]}.\n{gap}{b}: Who is older?\n{a}: It is"
        return Episode(tier, distance, prompt, older, [n1, n2])
    if tier == "persona_consistency":
        r1, r2 = _pick(rng, ROLES, 2)
        prompt = (f"{b}: You are a {r1}.\n{gap}{b}: Now you are a {r2}. Who are you?\n{a}: I am a")
        return Episode(tier, distance, prompt, r2, list(ROLES))
    if tier == "topic_threading":
        t1, t2 = _pick(rng, TOPICS, 2)
        prompt = (f"{a}: Let's discuss {t1}.\n{gap}{a}: Now compare them to {t2}.\n"
                  f"{b}: What did we discuss first?\n{a}: We discussed")
        return Episode(tier, distance, prompt, t1, list(TOPICS))
    raise ValueError(f"unknown statefulness tier {tier!r}; known: {', '.join(TIERS)}")


def oracle_answer(ep: Episode) -> str | None:
    """The answer re-derived from the prompt text alone (what the model sees), or None."""
    p = ep.prompt
    rules: dict[str, Callable[[str], str | None]] = {
        "three_turn_memory": lambda s: _last(r"My favourite colour is (\w+)\.", s),
        "contextual_correction": lambda s: _last(r"I prefer (\w+)\.", s),
        "interrupted_dialogue": lambda s: _last(r"I'm going to (\w+)\.", s),
        "multi_fact_composition": _older,
        "persona_consistency": lambda s: _last(r"[Yy]ou are a (\w+)\.", s),
        "topic_threading": lambda s: _first(r"Let's discuss (\w+)\.", s),
    }
    return rules[ep.tier](p)


def _last(pattern: str, s: str) -> str | None:
    found = re.findall(pattern, s)
    return found[-1] if found else None


def _first(pattern: str, s: str) -> str | None:
    found = re.findall(pattern, s)
    return found[0] if found else None


def _older(s: str) -> str | None:
    pairs = re.findall(r"(\w+) is (\d+)\.", s)
    return max(pairs, key=lambda p: int(p[1]))[0] if pairs else None


# ------------------------------------------------------------------------------------- tokens


@dataclass
class TokenizedItem:
    """Episodes of one test item as token ids, with the scored position and choice tokens."""

    name: str
    ids: list[list[int]]        # prompt + answer tokens per episode
    score_pos: list[int]        # index (in ids) of the last prompt token: logits there predict the answer
    choice_ids: list[list[int]] # first token of every choice, per episode
    label: list[int]            # index of the answer within the episode's choices
    episodes: list[Episode]

    @property
    def chance(self) -> float:
        return float(np.mean([1.0 / len(c) for c in self.choice_ids]))


def tokenize_item(name: str, episodes: list[Episode], encode: Callable[[str], list[int]],
                  misalign: int = 0) -> TokenizedItem:
    """Token ids of each episode (prompt and answer encoded apart, as in training) and the scored
    position. ``misalign`` shifts the scored position (only to test that the check catches it)."""
    ids, pos, choices, labels = [], [], [], []
    for ep in episodes:
        p = encode(ep.prompt)
        a = encode(" " + ep.answer)
        options = [encode(" " + c) for c in ep.choices]
        common = 0  # tokens every choice shares (a byte tokenizer's leading space): scored as prompt
        while all(len(o) > common + 1 and o[common] == options[0][common] for o in options):
            common += 1
        firsts = [o[common] for o in options]
        if len(set(firsts)) != len(firsts):
            raise ValueError(f"{name}: the choices {ep.choices} do not differ in their first distinct token "
                             "under this tokenizer; the multiple-choice score needs that")
        ids.append(p + a)
        pos.append(len(p) - 1 + common + misalign)
        choices.append(firsts)
        labels.append(ep.choices.index(ep.answer))
    return TokenizedItem(name, ids, pos, choices, labels, episodes)


def check_task(item: TokenizedItem) -> tuple[float, str | None]:
    """The oracle's accuracy on the item, and why the task is broken (None when it is sound).

    Sound means: the oracle, reading only the prompt, finds every label; the token after each
    scored position is the first token of the labelled choice (the score reads the answer, not
    its neighbour); and chance is below 1.
    """
    hits = sum(oracle_answer(ep) == ep.answer for ep in item.episodes)
    acc = hits / len(item.episodes)
    if acc < 1.0:
        bad = next(ep for ep in item.episodes if oracle_answer(ep) != ep.answer)
        return acc, (f"{item.name}: the oracle solves {hits}/{len(item.episodes)} episodes (labels do not "
                     f"follow from the prompts; e.g. label {bad.answer!r}, oracle {oracle_answer(bad)!r})")
    for k, (ids, p) in enumerate(zip(item.ids, item.score_pos)):
        want = item.choice_ids[k][item.label[k]]
        if not 0 <= p < len(ids) - 1 or ids[p + 1] != want:
            return acc, (f"{item.name}: episode {k}: the scored position {p} is not followed by the answer "
                         f"token {want} (labels misaligned with the token stream)")
    if item.chance >= 1.0:
        return acc, f"{item.name}: only one choice per episode: chance is 1"
    return acc, None


def suite(tiers: Sequence[str], tier_distance: int, recall_distances: Sequence[int], n: int, seed: int,
          lines: Sequence[str]) -> dict[str, list[Episode]]:
    """The evaluation items: each tier at ``tier_distance`` distractor turns (the seed's interrupted
    dialogue uses 10), and fact recall (the interrupted template) at each of ``recall_distances``."""
    rng = np.random.default_rng([seed, 7])
    items = {t: [make_episode(t, tier_distance, rng, lines) for _ in range(n)] for t in tiers}
    for d in recall_distances:
        items[f"recall_{d}"] = [make_episode("interrupted_dialogue", d, rng, lines) for _ in range(n)]
    return items


def persistence_score(accuracy_by_distance: dict[int, float], chance: float) -> float:
    """The seed's "state persistence score" (line 947-954: turns before a key fact is lost): the
    largest distance, in turns, up to which recall stays above halfway from chance to perfect
    (every shorter distance too); 0 when even the shortest distance is below it."""
    bar = chance + 0.5 * (1.0 - chance)
    score = 0.0
    for d in sorted(accuracy_by_distance):
        if accuracy_by_distance[d] < bar:
            break
        score = float(d)
    return score


#: How training distances are drawn: ``uniform`` over 0..max (mean max/2); ``harmonic``, P(d)
#: proportional to 1/(d+1) (at max 20: mean 4.8 turns, half the episodes at 0-2 turns); or
#: ``inverse_square``, P(d) proportional to 1/(d+1)^2 (at max 20: mean 1.3 turns, 85% at 0-2, where a
#: small attention model first learns the family; 3% at 10-20). Every distance up to max occurs.
DISTANCE_LAWS = ("uniform", "harmonic", "inverse_square")


def distance_weights(max_distance: int, law: str) -> np.ndarray:
    """P(d) for d = 0..max_distance under ``law``."""
    if law == "uniform":
        w = np.ones(max_distance + 1)
    elif law == "harmonic":
        w = 1.0 / np.arange(1, max_distance + 2)
    elif law == "inverse_square":
        w = 1.0 / np.arange(1, max_distance + 2) ** 2
    else:
        raise ValueError(f"unknown distance law {law!r}; known: {', '.join(DISTANCE_LAWS)}")
    return w / w.sum()


def training_episode(rng: np.random.Generator, lines: Sequence[str], max_distance: int,
                     tiers: Sequence[str] = TIERS, law: str = "uniform") -> Episode:
    """An episode for the training stream: a random tier, a distance up to ``max_distance`` drawn
    under ``law`` (``uniform`` draws exactly as before the law existed, so old batch hashes hold)."""
    tier = tiers[int(rng.integers(0, len(tiers)))]
    if law == "uniform":
        distance = int(rng.integers(0, max_distance + 1))
    else:
        distance = int(np.searchsorted(_cdf(max_distance, law), rng.random(), side="right"))
    return make_episode(tier, distance, rng, lines)


@functools.lru_cache(maxsize=16)
def _cdf(max_distance: int, law: str) -> np.ndarray:
    cdf = np.cumsum(distance_weights(max_distance, law))
    cdf[-1] = 1.0  # a draw of u < 1 never falls past max_distance
    return cdf
