"""Test support code: real servers started on loopback for the test session."""
