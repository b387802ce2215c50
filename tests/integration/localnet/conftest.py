"""A fresh localnet per test (manual slots, three endpoints), stopped afterwards."""

from __future__ import annotations





