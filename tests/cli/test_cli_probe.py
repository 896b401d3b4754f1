"""``probe`` in-process against the fake server in each mode and security drill."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from smtpsubmit.cli import probe_main
from smtpsubmit.cli._report import JSON_SCHEMA
from smtpsubmit.testing import Fault, Mode, SMTPServerFactory, ThreadedSMTPServer

from .helpers import closed_port, schema_errors


def _mode(server: ThreadedSMTPServer) -> str:
    return "implicit" if server.mode is Mode.IMPLICIT_TLS else "starttls"


ProbeRunner = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture(params=["asyncio", "trio"])
def run_probe(capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> ProbeRunner:
    """Probe one fake server with --json on each backend; the output must match the schema."""

    def run(server: ThreadedSMTPServer, *extra: str) -> tuple[int, dict[str, Any]]:
        argv = [server.host, "--port", str(server.port), "--tls", _mode(server), "--json"]
        code = probe_main([*argv, "--backend", request.param, *extra])
        report = json.loads(capsys.readouterr().out)
        assert schema_errors(report, JSON_SCHEMA) == []
        return code, report

    return run


def codes(port: dict[str, Any], severity: str | None = None) -> set[str]:
    return {f["code"] for f in port["findings"] if severity in (None, f["severity"])}


def client_verbs(server: ThreadedSMTPServer) -> set[str]:
    return {
        entry.line.split(" ", 1)[0].upper()
        for transcript in server.transcripts
        for entry in transcript
        if entry.direction == "client"
    }


def test_starttls_server_trusted_through_cafile_is_ok(
    run_probe: ProbeRunner, smtp_server: ThreadedSMTPServer
) -> None:
    code, report = run_probe(smtp_server, "--cafile", smtp_server.ca_pem_path)
    assert code == 0
    assert report["ok"] is True
    [port] = report["ports"]
    assert port["verdict"] == "ok"
    assert codes(port) == {"ok"}
    assert port["mode"] == "starttls"
    assert port["reachable"]
    assert port["address"] == "127.0.0.1"
    assert port["greeting"].startswith("220 ")
    assert "STARTTLS" in port["ehlo_before_tls"]
    assert port["auth_before_tls"] == []
    assert {"PLAIN", "SCRAM-SHA-256"} <= set(port["auth_after_tls"])
    assert all(port["timings_ms"][k] >= 0 for k in ("connect", "greeting", "tls_handshake"))
    tls = port["tls"]
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["verified"] is True
    assert tls["certificate"]["hostname_match"] is True
    assert "127.0.0.1" in tls["certificate"]["names"]
    assert tls["certificate"]["days_left"] > 365
    # Only EHLO, STARTTLS and QUIT, never AUTH or MAIL; both EHLOs and the QUIT were seen.
    assert client_verbs(smtp_server) == {"EHLO", "STARTTLS", "QUIT"}


def test_implicit_tls_server_is_ok(
    run_probe: ProbeRunner, smtps_server: ThreadedSMTPServer
) -> None:
    code, report = run_probe(smtps_server, "--cafile", smtps_server.ca_pem_path)
    [port] = report["ports"]
    assert code == 0
    assert port["verdict"] == "ok"
    assert port["ehlo_before_tls"] is None
    assert port["ehlo_after_tls"]
    assert port["tls"]["verified"] is True
    assert client_verbs(smtps_server) == {"EHLO", "QUIT"}


def test_stripped_starttls_is_an_error(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(faults=[Fault.strip_starttls()])
    code, report = run_probe(server, "--cafile", server.ca_pem_path)
    [port] = report["ports"]
    assert code == 1
    assert report["ok"] is False
    assert port["verdict"] == "error"
    assert codes(port, "error") == {"starttls-missing"}
    assert port["tls"] is None
    assert port["ehlo_after_tls"] is None
    assert client_verbs(server) == {"EHLO", "QUIT"}


def test_wrong_host_certificate_is_an_error_and_names_the_certificate(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, faults=[Fault.wrong_host_certificate()])
    code, report = run_probe(server, "--cafile", server.ca_pem_path)
    [port] = report["ports"]
    assert code == 1
    assert codes(port, "error") == {"certificate-hostname-mismatch"}
    [finding] = port["findings"]
    assert "certificate is for wrong.example, not 127.0.0.1" in finding["message"]
    assert port["tls"]["verified"] is False
    assert port["tls"]["certificate"]["names"] == ["wrong.example"]
    assert port["tls"]["certificate"]["hostname_match"] is False


def test_untrusted_ca_is_an_error_but_still_shows_the_certificate(
    run_probe: ProbeRunner, smtp_server: ThreadedSMTPServer
) -> None:
    code, report = run_probe(smtp_server)  # certifi does not know the test CA
    [port] = report["ports"]
    assert code == 1
    assert codes(port, "error") == {"certificate-untrusted"}
    tls = port["tls"]
    assert tls["verified"] is False
    assert "issuer" in tls["verify_error"]
    assert tls["certificate"]["issuer"].startswith("O=smtpsubmit fake server test CA")
    assert tls["certificate"]["hostname_match"] is True
    assert port["auth_after_tls"]  # the second, unverified look went on after TLS


def test_plaintext_on_the_implicit_tls_port_is_not_tls(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, faults=[Fault.plaintext_on_tls_port()])
    code, report = run_probe(server, "--cafile", server.ca_pem_path)
    [port] = report["ports"]
    assert code == 1
    assert codes(port, "error") == {"not-tls"}
    assert f"port {server.port} is not speaking TLS" in port["findings"][0]["message"]
    assert "220 fake-smtp.localhost" in port["findings"][0]["message"]


def test_auth_advertised_before_tls_is_a_warning(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(auth_before_tls_advertised=True, users={"u": "p"})
    code, report = run_probe(server, "--cafile", server.ca_pem_path)
    [port] = report["ports"]
    assert code == 0
    assert port["verdict"] == "warning"
    assert codes(port) == {"auth-before-tls"}
    assert "PLAIN" in port["auth_before_tls"]
    assert "offers AUTH before STARTTLS" in port["findings"][0]["message"]
    assert client_verbs(server) == {"EHLO", "STARTTLS", "QUIT"}  # AUTH was never tried
    assert (
        probe_main(
            [
                server.host,
                "--port",
                str(server.port),
                "--tls",
                "starttls",
                "--strict",
                "--cafile",
                server.ca_pem_path,
            ]
        )
        == 1
    )


def test_response_injection_after_starttls_is_an_error(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(faults=[Fault.inject_after_starttls()])
    code, report = run_probe(server, "--cafile", server.ca_pem_path)
    [port] = report["ports"]
    assert code == 1
    assert codes(port, "error") == {"starttls-injection"}
    assert port["tls"] is None  # no handshake on an attacked channel


def test_closed_port_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code = probe_main(["127.0.0.1", "--port", str(port), "--tls", "starttls", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert schema_errors(report, JSON_SCHEMA) == []
    [entry] = report["ports"]
    assert code == 1
    assert entry["reachable"] is False
    assert codes(entry) == {"unreachable"}


def test_silent_greeting_times_out_per_step(
    run_probe: ProbeRunner, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(faults=[Fault.delay("GREETING", seconds=30)])
    code, report = run_probe(server, "--timeout", "0.3")
    [port] = report["ports"]
    assert code == 1
    assert codes(port) == {"timeout"}
    assert "greeting timed out after 0.3 s" in port["findings"][0]["message"]


def test_several_ports_are_reported_in_order_in_the_human_output(
    capsys: pytest.CaptureFixture[str], smtp_server_factory: SMTPServerFactory
) -> None:
    implicit = smtp_server_factory(mode=Mode.IMPLICIT_TLS)
    starttls = smtp_server_factory(faults=[Fault.strip_starttls()])
    dead = closed_port()
    code = probe_main(
        [
            "127.0.0.1",
            "--cafile",
            implicit.ca_pem_path,
            "--port",
            str(implicit.port),
            "--tls",
            "implicit",
            "--port",
            str(starttls.port),
            "--tls",
            "starttls",
            "--port",
            str(dead),
            "--tls",
            "starttls",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.index(f"port {implicit.port}, implicit TLS") < out.index(f"port {starttls.port}")
    assert f"== port {implicit.port}, implicit TLS (127.0.0.1): OK" in out
    assert "chain and host name verified" in out
    assert f"ERROR    starttls-missing: port {starttls.port} does not offer STARTTLS" in out
    assert "ERROR    unreachable" in out
    assert out.rstrip().endswith(f"verdict: problems on port {starttls.port}, {dead}")


def test_json_schema_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main(["--json-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == JSON_SCHEMA


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "HOST argument is required"),
        (["h", "--port", "2525"], "port 2525 has no standard TLS mode"),
        (["h", "--tls", "implicit"], "--tls needs a --port"),
        (
            [
                "h",
                "--port",
                "1",
                "--port",
                "2",
                "--port",
                "3",
                "--tls",
                "implicit",
                "--tls",
                "starttls",
            ],
            "one --tls per --port",
        ),
        (["h", "--port", "70000", "--tls", "implicit"], "invalid port"),
        (
            ["h", "--cafile", "/nonexistent/ca.pem"],
            "error: cannot use --cafile /nonexistent/ca.pem: No such file or directory",
        ),
        (["h", "--timeout", "0"], "--timeout must be a positive number of seconds"),
        (["h", "--timeout", "nan"], "--timeout must be a positive number of seconds"),
        (["h", "--ehlo", "bad name"], "--ehlo is not a valid EHLO name: malformed EHLO"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert probe_main(argv) == 2
    assert message in capsys.readouterr().err


def test_standard_ports_need_no_tls_mode() -> None:
    from smtpsubmit.cli._probe import _targets, build_parser

    parser = build_parser()
    args = parser.parse_args(["h", "--port", "465", "--port", "25", "--port25"])
    assert _targets(parser, args) == [(465, "implicit"), (25, "starttls"), (25, "starttls")]
    args = parser.parse_args(["h", "--port25"])
    assert _targets(parser, args) == [(465, "implicit"), (587, "starttls"), (25, "starttls")]
    args = parser.parse_args(["h", "--port", "1", "--port", "2", "--tls", "implicit"])
    assert _targets(parser, args) == [(1, "implicit"), (2, "implicit")]
