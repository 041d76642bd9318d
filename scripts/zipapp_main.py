# ruff: noqa: UP031
# (This file must parse on Python 2.7 and 3.0 to 3.9 too: no f-strings, no annotations.)
"""The zipapp's ``__main__.py`` (``scripts/zipapp`` copies it in): check the Python
version first, and only then import sneaker, whose code needs Python 3.10 or newer.

On an older Python (RHEL 9's and Amazon Linux 2023's python3 is 3.9) it prints one line
saying what it needs and how to get it, and exits 2, instead of a SyntaxError from deep
inside a dependency. :func:`python_problem` is pure, for the tests.
"""

import os
import sys

MINIMUM = (3, 10)
#: newer interpreters worth suggesting by name, newest first
CANDIDATES = ("python3.14", "python3.13", "python3.12", "python3.11", "python3.10")


def newer_pythons(path, exists=os.path.isfile, access=os.access):
    """The CANDIDATES found on the ``os.pathsep``-separated ``path``, in order."""
    found = []
    for name in CANDIDATES:
        for directory in (path or "").split(os.pathsep):
            candidate = os.path.join(directory, name)
            if directory and exists(candidate) and access(candidate, os.X_OK):
                found.append(name)
                break
    return found


def python_problem(version_info, archive, found, windows=False):
    """None when ``version_info`` can run sneaker; else the one line to print.

    ``archive`` is the zipapp as it was named on the command line, ``found`` the
    newer interpreters on PATH (:func:`newer_pythons`).
    """
    if tuple(version_info[:2]) >= MINIMUM:
        return None
    have = ".".join(str(part) for part in version_info[:3])
    need = "%d.%d" % MINIMUM
    if windows:
        how = "run it with 'py -3.12 %s' (install Python from python.org first)" % archive
    elif found:
        how = "run it with '%s %s'" % (found[0], archive)
    else:
        how = (
            "install a newer one and run it with that (e.g. 'dnf install python3.11' on "
            "RHEL 9 or Amazon Linux 2023, then 'python3.11 %s')" % archive
        )
    return "error: sneaker needs Python %s or newer, this is Python %s: %s" % (need, have, how)


def main():
    archive = sys.argv[0] if sys.argv and sys.argv[0] else "sneaker.pyz"
    found = newer_pythons(os.environ.get("PATH", ""))
    problem = python_problem(sys.version_info, archive, found, windows=os.name == "nt")
    if problem is not None:
        sys.stderr.write(problem + "\n")
        sys.exit(2)
    from sneaker.cli import main as sneaker_main

    sys.exit(sneaker_main())


if __name__ == "__main__":
    main()
