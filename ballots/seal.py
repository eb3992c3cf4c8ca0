"""Sealed ballots: a ranking encrypted to the election's count key before it reaches Redis.

At the cast the ranking is encoded as a fixed-length record (so its length
says nothing about how many preferences it holds, or for whom) and sealed
with libsodium's sealed box (X25519 + XSalsa20-Poly1305, a fresh ephemeral
key per ballot).  Only the election's private count key opens it, and that
key exists only as trustees' shares until the count (``ballots/trustees.py``).

Each sealed ballot is stored base64-encoded as a member of a sorted set with
every score 0, so the set is ordered by the random ciphertext, never by the
order of casting.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from nacl.bindings import crypto_box_seal, crypto_box_seal_open
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey

from ballots.errors import OpenPrimaryError

#: The first byte of every sealed record: the encoding's version.
RECORD_VERSION = 1
#: How many bytes a sealed box adds to its plaintext (ephemeral key + MAC).
SEAL_OVERHEAD = 48


class InvalidBallot(OpenPrimaryError):
    """A sealed ballot that does not open, or opens to something that is not a ranking."""


def key_id(public_key: bytes) -> str:
    """A short fingerprint of a count key, stored beside it and in every share."""
    return hashlib.blake2b(public_key, digest_size=8, person=b"op-count-key").hexdigest()


def encode_ranking(candidate_ids: Sequence[str], ranking: Sequence[str]) -> bytes:
    """The fixed-length record for a ranking: version, then one byte per place.

    Each place holds a candidate's position in the election file plus one,
    and 0 once the preferences run out, so every record of an election has
    the same length.  The candidates and their order are fixed once ballots
    exist (``save_election`` refuses a change), so the positions stay valid.
    """
    if len(candidate_ids) > 255:
        raise ValueError("a sealed record holds at most 255 candidates")
    index = {cid: n for n, cid in enumerate(candidate_ids, 1)}
    places = [index[cid] for cid in ranking]
    return bytes([RECORD_VERSION, *places] + [0] * (len(candidate_ids) - len(places)))


def decode_ranking(candidate_ids: Sequence[str], record: bytes) -> tuple[str, ...]:
    """The ranking a record holds; InvalidBallot if it is not a well-formed one."""
    if len(record) != len(candidate_ids) + 1 or record[0] != RECORD_VERSION:
        raise InvalidBallot("record has the wrong length or version")
    places = record[1:]
    ranking: list[str] = []
    ended = False
    for place in places:
        if place == 0:
            ended = True
            continue
        if ended or place > len(candidate_ids):
            raise InvalidBallot("record has a gap or an unknown candidate")
        ranking.append(candidate_ids[place - 1])
    if len(set(ranking)) != len(ranking):
        raise InvalidBallot("record ranks a candidate twice")
    return tuple(ranking)


def seal(public_key: bytes, record: bytes) -> str:
    """Encrypt a record to the count key; the base64 text stored in Redis."""
    return base64.b64encode(crypto_box_seal(record, public_key)).decode("ascii")


def open_sealed(public_key: bytes, private_key: bytes, sealed: str | bytes) -> bytes:
    """The record inside a sealed ballot; InvalidBallot if it does not open."""
    try:
        return crypto_box_seal_open(
            base64.b64decode(sealed, validate=True), public_key, private_key
        )
    except (CryptoError, ValueError) as err:
        raise InvalidBallot("the sealed ballot does not open with this key") from err


def private_key_from_seed(seed: bytes) -> PrivateKey:
    """The count key rebuilt from the 16-byte secret the trustees share."""
    if len(seed) != 16:
        raise ValueError("a count key seed is 16 bytes")
    return PrivateKey(hashlib.blake2b(seed, digest_size=32, person=b"op-count-seed").digest())


def public_key_from_seed(seed: bytes) -> bytes:
    """The public half of the count key a seed makes."""
    return bytes(private_key_from_seed(seed).public_key)


def check_public_key(raw: bytes) -> bytes:
    """A stored public key, checked to be one (32 bytes)."""
    return bytes(PublicKey(raw))
