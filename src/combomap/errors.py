"""The common base of every error a user can fix by changing an input or a setting."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or settings: the console commands end it with one stderr line and exit status 2.

    A ValueError, so code that already catches ValueError around parsing keeps working.
    """
