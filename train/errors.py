"""The one error type of the training steps.

Every step raises a subclass of :class:`StepError` whose message is one sentence a user can act
on; the CLI prints it as is and exits 1, and nothing has been registered or promoted by then.
"""

from __future__ import annotations


class StepError(RuntimeError):
    """A step cannot go on; the message says why in one sentence."""
