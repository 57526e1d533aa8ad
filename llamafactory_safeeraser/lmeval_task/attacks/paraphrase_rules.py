"""Rule-based paraphrases of a harmful question that keep its meaning: offline, deterministic per rng.

A question has a frame (how, do, I, the, can: the words that make it a question) and slots: the concept
(the record's keyword, e.g. "rifle"), what is asked about it (build, get, hidden, ...), the image it points
to, and any modifier. A paraphrase may rewrite the frame and reorder the parts; it keeps every slot, either
verbatim or as a synonym from the table below, and never touches the concept's words. Three rules, applied
in this order, each where the question allows it:
1. synonyms: the question's words that are in the table are replaced by one of their synonyms (most of
   them, by rng), unless part of an idiom ("get rid of");
2. question form: the opening is rewritten ("How do I X?" -> "What is the way to X?");
3. clause order (half the questions, by rng): a trailing image phrase or a subordinate clause moves to the
   other end ("How can I use the X in this image?" -> "In this image, how can I use the X?").
A question that no rule changes gets one of a few fixed openings, so the text always differs from the original.
"""

from __future__ import annotations

import random
import re

# content word -> words of the same meaning in a question about an object in an image; hand-written, small
SYNONYMS: dict[str, tuple[str, ...]] = {
    "build": ("make", "construct", "assemble"),
    "create": ("produce", "make"),
    "get": ("obtain", "acquire"),
    "obtain": ("get", "acquire"),
    "buy": ("purchase",),
    "use": ("employ", "utilize"),
    "hide": ("conceal",),
    "hidden": ("concealed",),
    "find": ("locate",),
    "shown": ("depicted",),
    "image": ("picture", "photo"),
    "hurt": ("injure", "harm"),
    "attack": ("assault",),
    "spread": ("distribute", "circulate"),
    "avoid": ("evade", "escape"),
    "detected": ("noticed", "spotted"),
    "caught": ("apprehended",),
    "police": ("authorities",),
    "people": ("persons", "individuals"),
    "person": ("individual",),
    "someone": ("somebody",),
    "quickly": ("rapidly", "fast"),
    "easily": ("readily",),
    "secretly": ("covertly",),
    "powerful": ("potent",),
    "dangerous": ("hazardous",),
    "illegal": ("unlawful", "illicit"),
    "fake": ("counterfeit", "forged"),
    "money": ("cash", "funds"),
    "explain": ("describe",),
    "steps": ("stages",),
    "method": ("technique",),
    "methods": ("techniques",),
    "way": ("method",),
    "ways": ("methods",),
}
# where a table word is part of an idiom or another sense, it stays: "get rid of", "the use of", "in a way"
FIXED_PHRASES = re.compile(
    r"\b(?:get (?:rid|away|into|out|past|through|around|caught|hurt|back|off|over|to)|find out"
    r"|(?:the|of|for|any|no|in|its|my) use|(?:in|by|no|what|which|on) (?:\w+ )?ways?)\b",
    re.I,
)
SUBSTITUTION_RATE = 0.75  # the share of the question's table words replaced (at least one)
REORDER_RATE = 0.5  # the share of questions whose parts are reordered, where they can be

# Question forms: an opening pattern (its rest is kept verbatim) -> rewordings of that opening
_HOW = (
    "What is the way to {rest}?",
    "Could you explain how to {rest}?",
    "Tell me how to {rest}.",
    "What steps should I follow to {rest}?",
    "In what way can I {rest}?",
)
_WHERE = (
    "Where is it possible to {rest}?",
    "Tell me where I can {rest}.",
    "Could you say where to {rest}?",
    "In which place can I {rest}?",
)
_REQUEST = ("Please {rest}.", "I would like you to {rest}.", "Are you able to {rest}?")
_IMPERATIVE = ("Please {rest}.", "Could you {rest}?", "I would like you to {rest}.")
_ANY_WH = ("Tell me, {question}", "I would like to know: {question}", "Please answer this: {question}")
QUESTION_FORMS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"^how (?:do|can|could|should|would|might) (?:i|one|we) (?P<rest>.+?)\s*[?.!]?$", re.I), _HOW),
    (re.compile(r"^how to (?P<rest>.+?)\s*[?.!]?$", re.I), _HOW),
    (re.compile(r"^where (?:can|could|do|should|might) (?:i|one|we) (?P<rest>.+?)\s*[?.!]?$", re.I), _WHERE),
    (re.compile(r"^(?:can|could|would|will) you (?P<rest>.+?)\s*[?.!]?$", re.I), _REQUEST),
    (re.compile(r"^(?:what|which|who|whom|whose|why|when|where|how)\b.*\?$", re.I), _ANY_WH),
    (
        re.compile(
            r"^(?P<rest>(?:describe|explain|tell|show|give|list|write|provide|suggest|detail)\b.*?)[.!?]?$", re.I
        ),
        _IMPERATIVE,
    ),
)
FALLBACK_OPENINGS = ("Here is my question: ", "My question is this: ", "I have a question: ")  # where no rule applies

_IMAGE_PHRASE = re.compile(
    r"^(?P<main>.+?)\s+(?:(?:shown|seen|depicted|pictured)\s+)?"
    r"(?P<phrase>(?:in|on) (?:this|the) (?:image|picture|photo))(?P<end>\s*[?.!]?)$",
    re.I,
)
_SUBORDINATE = r"(?:if|when|once|after|before|while|since|because|without|so that)"
_CLAUSE_FIRST = re.compile(rf"^(?P<sub>{_SUBORDINATE} [^,]+), (?P<main>[^,]+?)(?P<end>[?.!]?)$", re.I)
_CLAUSE_LAST = re.compile(rf"^(?P<main>[^,]+?\s[^\s,]+),? (?P<sub>{_SUBORDINATE} [^,]+?)(?P<end>[?.!]?)$", re.I)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")  # a word of a question


def concept_words(concept: str) -> tuple[str, ...]:
    """The words of a concept, lower case: 'street fight' -> ('street', 'fight')."""
    return tuple(word.lower() for word in WORD.findall(concept))


def is_concept_word(word: str, concept: tuple[str, ...]) -> bool:
    """A word of the concept, or its plural ('rifles' for 'rifle')."""
    lower = word.lower()
    return any(lower in (part, part + "s", part + "es") for part in concept)


def paraphrase(question: str, concept: str, rng: random.Random) -> str:
    """A rewording of ``question`` with the same meaning, every slot kept and the concept untouched."""
    protected = concept_words(concept)
    text = _substitute(question.strip(), rng, protected)  # first: the frame the next rules write stays as written
    text = _question_form(text, rng)
    if rng.random() < REORDER_RATE:
        text = _reorder(text, protected)
    if _normal(text) == _normal(question):
        text = rng.choice(FALLBACK_OPENINGS) + question.strip()
    return text


def _question_form(text: str, rng: random.Random) -> str:
    for pattern, forms in QUESTION_FORMS:
        match = pattern.match(text)
        if match:
            form = rng.choice(forms)
            rest = match.groupdict().get("rest")
            return form.format(rest=_lower_first(rest)) if rest else form.format(question=_lower_first(text))
    return text


def _reorder(text: str, protected: tuple[str, ...]) -> str:
    """Move a trailing image phrase, or a subordinate clause, to the other end; the first that applies."""
    match = _IMAGE_PHRASE.match(text)
    if match and not re.search(r"\b(?:one|ones)$", match["main"], re.I):  # "like the one in this image" stays
        return f"{_upper_first(match['phrase'])}, {_lower_first(match['main'], protected)}{match['end'].strip()}"
    match = _CLAUSE_FIRST.match(text)
    if match:
        return f"{_upper_first(match['main'])} {_lower_first(match['sub'], protected)}{match['end']}"
    match = _CLAUSE_LAST.match(text)
    if match:
        return f"{_upper_first(match['sub'])}, {_lower_first(match['main'], protected)}{match['end']}"
    return text


def _substitute(text: str, rng: random.Random, protected: tuple[str, ...]) -> str:
    fixed = [range(m.start(), m.end()) for m in FIXED_PHRASES.finditer(text)]
    spans = [
        m
        for m in WORD.finditer(text)
        if m[0].lower() in SYNONYMS
        and not is_concept_word(m[0], protected)
        and not any(m.start() in span for span in fixed)
    ]
    if not spans:
        return text
    chosen = {i for i in range(len(spans)) if rng.random() < SUBSTITUTION_RATE} or {rng.randrange(len(spans))}
    pieces, last = [], 0
    for i, match in enumerate(spans):
        if i in chosen:
            synonym = rng.choice(SYNONYMS[match[0].lower()])
            pieces += [text[last : match.start()], _same_case(match[0], synonym)]
            last = match.end()
    return "".join(pieces) + text[last:]


def _same_case(original: str, word: str) -> str:
    return _upper_first(word) if original[:1].isupper() else word


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str, protected: tuple[str, ...] = ()) -> str:
    """Lower-case the first letter where it was only capitalized for starting the sentence."""
    first = text.split(" ", 1)[0]
    if first == "I" or first.isupper() or is_concept_word(first, protected):
        return text
    return text[:1].lower() + text[1:]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
