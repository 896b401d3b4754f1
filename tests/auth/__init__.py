"""Tests for smtpsubmit.auth; a package so that test modules can import conftest helpers."""
