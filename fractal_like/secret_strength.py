"""Whether a JWT secret is too predictable to protect a production server.

The rule, kept simple enough to explain in the docs: a secret is refused when it
- is a known placeholder or shorter than 32 characters;
- has fewer than 8 distinct characters, or one character more than 7 times in a row;
- is mostly one pattern repeated: for some shift, more than three quarters of its
  characters equal the one that far earlier ("abcabc...", "0123456789...");
- is mostly a run of neighbours: more than half its steps go to the next or previous
  character ("abcdef...", "987654...");
- carries less than 128 bits by a generous estimate: its length times log2 of the size
  of the character classes it uses (digits, lower case, upper case, other).
`openssl rand -hex 32` and `secrets.token_urlsafe(32)` pass with a wide margin: each
check is far from what random output does (random hex matches a shifted copy of
itself at about 1/16 of the positions).
"""

from __future__ import annotations

import itertools
import math
import string

WEAK_SECRETS = {"", "secret", "changeme", "change-me", "jwt-secret", "fractal", "password"}
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 8
MIN_ESTIMATED_BITS = 128
MAX_RUN = 7  # random hex has 8 equal characters in a row about once in 10 million secrets
# Above these shares of matching positions, a secret is a pattern rather than noise.
MAX_PATTERN_SHARE = 0.75
MAX_SEQUENCE_SHARE = 0.5

_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
_OTHER_CLASS_SIZE = 33  # printable ASCII punctuation and space


def secret_weakness(secret: str) -> str | None:
    """Why the secret is weak, or None when it is acceptable."""
    if secret.lower() in WEAK_SECRETS:
        return "it is a well-known placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"it has {len(secret)} characters, fewer than {MIN_SECRET_LENGTH}"
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return (
            f"it uses only {len(set(secret))} distinct characters "
            f"(at least {MIN_DISTINCT_CHARACTERS} needed)"
        )
    if _longest_run(secret) > MAX_RUN:
        return f"it has one character more than {MAX_RUN} times in a row"
    if _repeats_a_pattern(secret):
        return "it repeats a pattern"
    if _is_mostly_a_sequence(secret):
        return "it is mostly a run of neighbouring characters"
    bits = estimated_bits(secret)
    if bits < MIN_ESTIMATED_BITS:
        return f"it carries about {bits:.0f} bits, fewer than {MIN_ESTIMATED_BITS}"
    return None


def estimated_bits(secret: str) -> float:
    """Length times log2 of the size of the character classes the secret uses."""
    alphabet = sum(len(chars) for chars in _CLASSES if any(c in chars for c in secret))
    if any(not any(c in chars for chars in _CLASSES) for c in secret):
        alphabet += _OTHER_CLASS_SIZE
    return len(secret) * math.log2(alphabet)


def _longest_run(secret: str) -> int:
    longest = current = 1
    for previous, char in itertools.pairwise(secret):
        current = current + 1 if char == previous else 1
        longest = max(longest, current)
    return longest


def _repeats_a_pattern(secret: str) -> bool:
    """True when, for some shift up to half the length, most characters equal the shifted one."""
    for shift in range(1, len(secret) // 2 + 1):
        same = sum(a == b for a, b in zip(secret, secret[shift:], strict=False))
        if same > MAX_PATTERN_SHARE * (len(secret) - shift):
            return True
    return False


def _is_mostly_a_sequence(secret: str) -> bool:
    steps = sum(abs(ord(a) - ord(b)) == 1 for a, b in itertools.pairwise(secret))
    return steps > MAX_SEQUENCE_SHARE * (len(secret) - 1)
