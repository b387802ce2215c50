"""Tests for Solana.py."""
