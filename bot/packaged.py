"""Where the files Oodaloo carries beside its code are: the Jinja templates.

A checkout keeps them in the repository's top-level `templates/` folder; the wheel carries that
folder as the package `oodaloo_templates` (pyproject.toml maps it). A checkout (or an editable
install of one) always reads its own folder, so two checkouts sharing one virtualenv never read
each other's; an installed wheel reads the package through importlib.resources.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

TEMPLATES_PACKAGE = "oodaloo_templates"


@cache
def templates_dir() -> Path:
    """The folder holding `slack/` and `email/` templates."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "templates").is_dir():
        return checkout / "templates"
    try:
        packaged = importlib.resources.files(TEMPLATES_PACKAGE)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"Oodaloo's templates are missing (no {checkout / 'templates'} and no package "
            f"{TEMPLATES_PACKAGE}): reinstall Oodaloo from its wheel, or run it from a checkout"
        ) from None
    # Jinja's FileSystemLoader reads the file system; an installed wheel is unpacked there.
    return Path(str(packaged))
