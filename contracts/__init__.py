"""What the deployables (train, bento, ui) agree on, with no dependency beyond the standard library.

Each image copies this package beside its own code, so a name or a parsing rule has one home
without the service importing training code or the UI importing either.
"""
