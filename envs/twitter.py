"""TwitterAPI: one user's account (login, tweets, retweets, comments, follows).

Behaviour-identical to bfcl-eval's ``posting_api.py``, quirks included (marked *quirk*). The
default account is read from the official source at run time.
"""

from __future__ import annotations

from typing import Any, Mapping

from envs.base import Backend, official_template

_SOURCE = "posting_api.py"

# Stands for "argument left out" in post_tweet (see TwitterAPI.post_tweet); immutable.
_OMITTED: Any = object()

# Bound on (tweets sharing the default mentions list) x (printed size of that list), see
# TwitterAPI._shared_mentions_too_big.
_SHARED_MENTIONS_LIMIT = 10_000_000
_SHARED_MENTIONS_ERROR = "Mentions too large: the tweets sharing them would exceed the size limit."


def _printed_size(value: Any) -> int:
    """Roughly how many characters extending a list with ``value`` adds to its printed form."""
    if type(value) is str:
        return 5 * len(value)  # a string extends the list character by character: "'c', "
    try:
        return len(repr(value))
    except (ValueError, RecursionError):  # e.g. an int too long to print
        return _SHARED_MENTIONS_LIMIT


def _not_authenticated(action: str) -> dict[str, str]:
    return {"error": f"User not authenticated. Please authenticate before {action}."}


def _tweet_not_found(tweet_id: Any) -> dict[str, str]:
    return {"error": f"Tweet with ID {tweet_id} not found."}


class TwitterAPI(Backend):
    """The account, its tweets and social graph.

    Compared state, in this order: ``username`` ("john"), ``password`` ("john123"),
    ``authenticated`` (False), ``tweets`` (tweet id → tweet dict, default empty; scenario keys
    are converted to int), ``comments`` (tweet id → list of comments; scenario keys stay
    strings while new comments use int keys), ``retweets`` (username → list of tweet ids),
    ``following_list`` (["alice", "bob"]) and ``tweet_counter`` (next tweet id, 0).

    No private state besides the two lists post_tweet uses when tags or mentions are left out
    (see there). ``long_context`` is accepted and ignored.
    """

    class_name = "TwitterAPI"
    doc_file = "posting_api.json"
    stateless = False

    def __init__(self) -> None:
        # quirk: the official post_tweet has mutable default arguments (tags=[], mentions=[]),
        # so every tweet posted without tags (mentions) holds the *same* list, and mention()
        # on one of them extends it for all of them and for later posts. Reproduced per
        # instance: these two lists play the part of the shared defaults.
        self._default_tags: list[Any] = []
        self._default_mentions: list[Any] = []
        self._default_mentions_sharers = 0  # tweets posted here holding _default_mentions
        self._default_mentions_size = 0  # printed size of what mention() put into it
        self.load_scenario({})

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        defaults = official_template(_SOURCE, "DEFAULT_STATE").fresh()

        def pick(name: str) -> Any:
            return config[name] if name in config else defaults[name]

        self.username = pick("username")
        self.password = pick("password")
        self.authenticated = pick("authenticated")
        # quirk: JSON gives string keys; tweets get int keys, comments keep the strings
        self.tweets = {int(key): tweet for key, tweet in pick("tweets").items()}
        self.comments = pick("comments")
        self.retweets = pick("retweets")
        self.following_list = pick("following_list")
        self.tweet_counter = pick("tweet_counter")

    # -- account -----------------------------------------------------------------------------

    def authenticate_twitter(self, username: str, password: str) -> dict[str, bool]:
        if username == self.username and password == self.password:
            self.authenticated = True
            return {"authentication_status": True}
        return {"authentication_status": False}

    def posting_get_login_status(self) -> dict[str, bool]:
        return {"login_status": bool(self.authenticated)}

    # -- tweets ------------------------------------------------------------------------------

    def post_tweet(self, content: str, tags: list[str] = _OMITTED, mentions: list[str] = _OMITTED) -> dict[str, Any]:
        if not self.authenticated:
            return _not_authenticated("posting")
        if mentions is _OMITTED:
            if self._shared_mentions_too_big(self._default_mentions_sharers + 1, 0):
                return {"error": _SHARED_MENTIONS_ERROR}
            self._default_mentions_sharers += 1
        tweet = {
            "id": self.tweet_counter,
            "username": self.username,
            "content": content,
            "tags": self._default_tags if tags is _OMITTED else tags,
            "mentions": self._default_mentions if mentions is _OMITTED else mentions,
        }
        self.tweets[self.tweet_counter] = tweet
        self.tweet_counter += 1
        return tweet

    def retweet(self, tweet_id: int) -> dict[str, str]:
        if not self.authenticated:
            return _not_authenticated("retweeting")
        if tweet_id not in self.tweets:
            return _tweet_not_found(tweet_id)
        mine = self.retweets.setdefault(self.username, [])
        if tweet_id in mine:
            return {"retweet_status": "Already retweeted"}
        mine.append(tweet_id)
        return {"retweet_status": "Successfully retweeted"}

    def comment(self, tweet_id: int, comment_content: str) -> dict[str, str]:
        if not self.authenticated:
            return _not_authenticated("commenting")
        if tweet_id not in self.tweets:
            return _tweet_not_found(tweet_id)
        self.comments.setdefault(tweet_id, []).append({"username": self.username, "content": comment_content})
        return {"comment_status": "Comment added successfully"}

    def mention(self, tweet_id: int, mentioned_usernames: list[str]) -> dict[str, str]:
        # quirk: no authentication check; the tweet's own mentions list is extended in place
        if tweet_id not in self.tweets:
            return _tweet_not_found(tweet_id)
        mentions = self.tweets[tweet_id]["mentions"]
        shared = mentions is self._default_mentions
        added = _printed_size(mentioned_usernames) if shared else 0
        if shared and self._shared_mentions_too_big(self._default_mentions_sharers, added):
            return {"error": _SHARED_MENTIONS_ERROR}
        mentions.extend(mentioned_usernames)
        self._default_mentions_size += added
        return {"mention_status": "Users mentioned successfully"}

    def _shared_mentions_too_big(self, sharers: int, added: int) -> bool:
        """True if the shared default mentions list would make replies explode.

        Deliberate divergence, for hostile input only: every tweet posted without mentions
        holds the same list, so one large mention() is repeated in every such tweet and
        get_user_tweets/search_tweets replies grow as (tweets x list size). The official code
        has no bound; here post_tweet and mention refuse with an error once that product would
        exceed _SHARED_MENTIONS_LIMIT characters (far beyond any real use).
        """
        return sharers * (self._default_mentions_size + added) > _SHARED_MENTIONS_LIMIT

    def get_tweet(self, tweet_id: int) -> dict[str, Any]:
        if tweet_id not in self.tweets:
            return _tweet_not_found(tweet_id)
        return self.tweets[tweet_id]

    def get_user_tweets(self, username: str) -> list[dict[str, Any]]:
        # A list: the engine prints it with str(), not JSON.
        return [tweet for tweet in self.tweets.values() if tweet["username"] == username]

    def search_tweets(self, keyword: str) -> list[dict[str, Any]]:
        return [tweet for tweet in self.tweets.values() if self._matches(tweet, keyword)]

    @staticmethod
    def _matches(tweet: Mapping[str, Any], keyword: str) -> bool:
        """Case-insensitive substring of the content, or case-insensitive equality with a tag.

        The keyword is lowered per tweet (not once up front), so a keyword without ``lower``
        only fails when there is a tweet to test, as in the official code.
        """
        if keyword.lower() in tweet["content"].lower():
            return True
        return keyword.lower() in [tag.lower() for tag in tweet["tags"]]

    def get_tweet_comments(self, tweet_id: int) -> Any:
        if tweet_id not in self.tweets:
            return _tweet_not_found(tweet_id)
        return self.comments.get(tweet_id, [])

    # -- following ---------------------------------------------------------------------------

    def follow_user(self, username_to_follow: str) -> dict[str, Any]:
        if not self.authenticated:
            return _not_authenticated("following")
        if username_to_follow in self.following_list:
            return {"follow_status": False}
        self.following_list.append(username_to_follow)
        return {"follow_status": True}

    def unfollow_user(self, username_to_unfollow: str) -> dict[str, Any]:
        if not self.authenticated:
            return _not_authenticated("unfollowing")
        if username_to_unfollow not in self.following_list:
            return {"unfollow_status": False}
        self.following_list.remove(username_to_unfollow)
        return {"unfollow_status": True}

    def list_all_following(self) -> dict[str, Any]:
        if not self.authenticated:
            return _not_authenticated("listing following")
        return {"following_list": self.following_list}

    def get_user_stats(self, username: str) -> dict[str, int]:
        tweet_count = len(self.get_user_tweets(username))
        following_count = len(self.following_list) if username == self.username else 0
        retweet_count = len(self.retweets.get(username, []))
        return {"tweet_count": tweet_count, "following_count": following_count, "retweet_count": retweet_count}
