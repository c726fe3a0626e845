"""Names unique to a test run. The matcher folds digits out of names (`Leaver1a2b` reads as `leaver a b`), so a
run's hex id goes into a name as letters, or two runs' people could read as one."""


def letters(run: str) -> str:
    """A hex run id as letters, one for one: `1a2b` → `bkcl`."""
    return "".join("abcdefghijklmnop"[int(ch, 16)] for ch in run.lower())
