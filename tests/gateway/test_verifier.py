"""Signatures verified in the child process are accepted exactly as in the gateway, and
nothing is accepted unverified when the child is missing, dies or stalls.

A real child (`python -m keel.gateway.verifier`) checks a mix of good signatures, bad
ones, a signature of another text and the second of two candidate texts, sent in one
loop pass and so in one frame; the answers must equal `auth.verify_signature`'s. Then the
child is killed, with checks waiting and after: they are verified in-process, with the
same answers. A child that never answers times out into the same fallback.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import VerifyKey

from keel.gateway import verifier as verifier_module
from keel.gateway.auth import verify_signature
from keel.gateway.verifier import SignatureChecks


def _cases() -> list[tuple[object, bytes, list[bytes]]]:
    # Clients sign with OpenSSL (cryptography), as most do; the gateway verifies with libsodium.
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    alice_public = VerifyKey(alice.public_key().public_bytes_raw())
    bob_public = VerifyKey(bob.public_key().public_bytes_raw())
    text, other = b"instruction=orderExecute&symbol=SOL_USDC&timestamp=1&window=5000", b"instruction=x"
    signature = alice.sign(text)
    return [
        (alice_public, signature, [text]),  # good
        (bob_public, signature, [text]),  # another key
        (alice_public, signature, [other]),  # another text
        (alice_public, bytes(64), [text]),  # not a signature
        (alice_public, signature, [other, text]),  # the second candidate (percent-encoded form)
        (bob_public, bob.sign(other), [other]),  # good, another key
        (alice_public, signature[:63], [text]),  # too short to be a signature
    ]


def _expected(cases: list[tuple[object, bytes, list[bytes]]]) -> list[bool]:
    return [verify_signature(key, signature, texts) for key, signature, texts in cases]  # type: ignore[arg-type]


async def _check_all(checks: SignatureChecks, cases: list[tuple[object, bytes, list[bytes]]]) -> list[bool]:
    return list(await asyncio.gather(*(checks.verify(key, sig, texts) for key, sig, texts in cases)))  # type: ignore[arg-type]


def test_the_child_answers_as_the_gateway_would() -> None:
    cases = _cases()
    assert _expected(cases) == [True, False, False, False, True, True, False]

    async def run() -> None:
        checks = SignatureChecks()
        await checks.start()
        try:
            assert checks.process is not None
            assert await _check_all(checks, cases) == _expected(cases)
            assert await _check_all(checks, cases[::-1]) == _expected(cases[::-1])
            assert not checks.failed
        finally:
            await checks.close()
        assert checks.process.returncode == 0  # it exits when its stdin closes
        assert await _check_all(checks, cases) == _expected(cases)  # closed: verified here

    asyncio.run(run())


def test_a_dead_child_leaves_verification_to_the_gateway() -> None:
    cases = _cases()

    async def run() -> None:
        checks = SignatureChecks()
        await checks.start()
        try:
            assert checks.process is not None
            waiting = asyncio.ensure_future(_check_all(checks, cases))
            checks.process.kill()
            assert await waiting == _expected(cases)
            assert await _check_all(checks, cases) == _expected(cases)
            assert checks.failed
        finally:
            await checks.close()

    asyncio.run(run())


def test_a_silent_child_times_out_into_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _cases()
    monkeypatch.setattr(verifier_module, "CHECK_TIMEOUT_S", 0.2)
    silent = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); time.sleep(30)"]
    real_popen = subprocess.Popen

    def popen(arguments: list[str], **options: object) -> subprocess.Popen[bytes]:
        return real_popen(silent, **options)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(verifier_module.subprocess, "Popen", popen)

    async def run() -> None:
        checks = SignatureChecks()
        await checks.start()
        try:
            assert await _check_all(checks, cases) == _expected(cases)
            assert checks.failed
        finally:
            assert checks.process is not None
            checks.process.kill()
            await checks.close()

    asyncio.run(run())


def test_a_child_that_cannot_start_leaves_verification_to_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _cases()

    def popen(arguments: list[str], **options: object) -> subprocess.Popen[bytes]:
        raise OSError("no such program")

    monkeypatch.setattr(verifier_module.subprocess, "Popen", popen)

    async def run() -> None:
        checks = SignatureChecks()
        await checks.start()
        assert checks.failed
        assert await _check_all(checks, cases) == _expected(cases)
        await checks.close()

    asyncio.run(run())
