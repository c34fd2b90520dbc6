"""Reports made from an incident's record: for a regulator, for a post-mortem, for a person.

Pure: the record, the config and the time of reading go in; plain data and text
come out.  Whatever only a person can know is a placeholder, never a guess.
"""

from __future__ import annotations
