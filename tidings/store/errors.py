"""Why a store cannot be opened, said in one line that names where it is."""

from __future__ import annotations


class StoreOpenError(Exception):
    """The store at ``where`` (a path or a URL without its password) cannot be used."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot open the store {where}: {reason}")
        self.where = where  # the file, directory or URL
        self.reason = reason  # one sentence, no traceback
