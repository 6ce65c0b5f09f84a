"""TwitterAPI as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Overridden: ``comment`` (fails with a TypeError when nobody is logged in) and
``list_all_following`` (the bare list). Everything else is the default release's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.twitter import TwitterAPI as TwitterAPINow
from envs.twitter import _not_authenticated
from envs.v2025_10_2 import VERSION


class TwitterAPI(TwitterAPINow):
    """TwitterAPI of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def comment(self, tweet_id: int, comment_content: str) -> dict[str, str]:
        if not self.authenticated:
            # 2025.10.2 raises its error dict, which Python refuses to raise: the call fails
            # with this TypeError (an execution error), and nothing changes
            raise TypeError("exceptions must derive from BaseException")
        return super().comment(tweet_id, comment_content)

    def list_all_following(self) -> list[Any] | dict[str, str]:
        if not self.authenticated:
            return _not_authenticated("listing following")
        # 2025.10.2: the list itself (by reference), not wrapped in a dict
        return self.following_list
