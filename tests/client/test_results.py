"""SendResult's transcript: rendered from commands and replies when read, secrets redacted."""

from __future__ import annotations

import pickle

from smtpsubmit import Transcript, TranscriptLine
from smtpsubmit.protocol import Auth, EnhancedStatus, Mail, Rcpt, Reply


def test_commands_and_replies_render_as_wire_lines() -> None:
    multi = Reply(250, ("first", "second"), EnhancedStatus(2, 0, 0))
    transcript = Transcript([Mail("a@example.com"), Reply(250, ("Ok",)), multi])
    assert [str(line) for line in transcript] == [
        "C: MAIL FROM:<a@example.com>",
        "S: 250 Ok",
        "S: 250-2.0.0 first",
        "S: 250 2.0.0 second",
    ]
    assert transcript[0] == TranscriptLine("C", "MAIL FROM:<a@example.com>")
    assert transcript[-1].direction == "S"
    assert len(transcript) == 4


def test_auth_payload_never_reaches_the_text() -> None:
    secret = "AGFsaWNlAHMzY3IzdA=="  # base64 of "\0alice\0s3cr3t"
    transcript = Transcript([Auth("PLAIN", b"\0alice\0s3cr3t")])
    assert secret not in repr(transcript)
    assert all(secret not in line.text for line in transcript)
    assert transcript[0].text.startswith("AUTH PLAIN")


def test_equal_to_the_same_lines_in_any_sequence() -> None:
    transcript = Transcript([Rcpt("b@example.com")])
    line = TranscriptLine("C", "RCPT TO:<b@example.com>")
    assert transcript == (line,)
    assert transcript == [line]
    assert transcript == Transcript([line])
    assert transcript != (line, line)
    assert hash(transcript) == hash((line,))
    assert transcript[0:1] == (line,)


def test_a_transcript_pickles_as_its_redacted_lines() -> None:
    transcript = Transcript([Auth("PLAIN", b"\0alice\0s3cr3t"), Reply(235, ("Ok",))])
    data = pickle.dumps(transcript)
    assert b"s3cr3t" not in data
    assert b"AGFsaWNlAHMzY3IzdA" not in data
    assert pickle.loads(data) == transcript
