"""TwitterAPI: the reproduced quirks, checked by value and against the official engine."""

from __future__ import annotations

import json

from envs.twitter import TwitterAPI
from tests.oracle import compare_with_official as _compare
from tests.oracle import run_ours
from toolenv.executor import Session

CLS = "TwitterAPI"
LOGIN = "authenticate_twitter(username='john', password='john123')"


def run(calls: list[str], config: dict | None = None) -> tuple[Session, list[str]]:
    return run_ours(CLS, calls, config)


def compare_with_official(calls: list[str], config: dict | None = None) -> list[str]:
    return _compare(CLS, calls, config)


def test_public_state_order_and_defaults() -> None:
    api = TwitterAPI()
    assert list(api.public_state()) == [
        "username",
        "password",
        "authenticated",
        "tweets",
        "comments",
        "retweets",
        "following_list",
        "tweet_counter",
    ]
    assert api.following_list == ["alice", "bob"] and api.tweet_counter == 0
    TwitterAPI().following_list.append("carol")
    assert TwitterAPI().following_list == ["alice", "bob"]  # defaults are never shared


def test_tweet_keys_become_int_comment_keys_stay_strings() -> None:
    api = TwitterAPI()
    api.load_scenario(
        {
            "tweets": {"1": {"id": 1, "username": "a", "content": "c", "tags": [], "mentions": []}},
            "comments": {"1": [{"username": "b", "content": "x"}]},
            "authenticated": True,
        }
    )
    assert list(api.tweets) == [1]
    assert api.get_tweet_comments(1) == []  # the scenario's comments sit under the key "1"
    api.comment(1, "new")
    assert list(api.comments) == ["1", 1]


def test_default_mentions_are_shared_within_one_instance_only() -> None:
    calls = [
        LOGIN,
        "post_tweet(content='a')",
        "mention(tweet_id=0, mentioned_usernames=['@x'])",
        "post_tweet(content='b')",
        "get_tweet(tweet_id=0)",
    ]
    _, out = run(calls)
    assert json.loads(out[3])["mentions"] == ["@x"]  # the later tweet got the shared list
    assert json.loads(out[4])["mentions"] == ["@x"]
    _, again = run(calls)
    assert again == out  # a new instance starts with empty defaults
    _, explicit = run(
        [
            LOGIN,
            "post_tweet(content='a', mentions=[])",
            "mention(tweet_id=0, mentioned_usernames=['@x'])",
            "post_tweet(content='b')",
        ]
    )
    assert json.loads(explicit[3])["mentions"] == []


def test_shared_default_mentions_cannot_explode_replies() -> None:
    api = TwitterAPI()
    api.authenticated = True
    for _ in range(100):
        api.post_tweet("t")
    result = api.mention(0, ["x" * 200_000])  # would be printed in all 100 tweets
    assert "error" in result and api.tweets[0]["mentions"] == []
    assert api.mention(0, ["@ok"]) == {"mention_status": "Users mentioned successfully"}


def test_lists_are_printed_with_str() -> None:
    _, out = run(
        [
            LOGIN,
            "post_tweet(content='Hello', tags=['#A'])",
            "search_tweets(keyword='#a')",
            "get_user_tweets(username='nobody')",
            "get_tweet_comments(tweet_id=0)",
        ]
    )
    assert out[2] == "[{'id': 0, 'username': 'john', 'content': 'Hello', 'tags': ['#A'], 'mentions': []}]"
    assert out[3] == "[]" and out[4] == "[]"


QUIRK_CALLS = [
    "post_tweet(content='x')",
    "retweet(tweet_id=0)",
    "mention(tweet_id=1, mentioned_usernames=['@a'])",  # no authentication needed
    "authenticate_twitter(username='john', password='wrong')",
    "posting_get_login_status()",
    LOGIN,
    "post_tweet(content='first')",
    "post_tweet(content='second', tags=['#T'])",
    "mention(tweet_id=5, mentioned_usernames='ab')",
    "post_tweet(content='third')",
    "mention(tweet_id=6, mentioned_usernames=5)",
    "mention(tweet_id='5', mentioned_usernames=['@b'])",
    "mention(tweet_id=[5], mentioned_usernames=['@b'])",
    "get_tweet(tweet_id=7)",
    "retweet(tweet_id=1)",
    "retweet(tweet_id=1)",
    "retweet(tweet_id='1')",
    "comment(tweet_id=1, comment_content='c1')",
    "comment(tweet_id=True, comment_content='c2')",
    "get_tweet_comments(tweet_id=1)",
    "get_tweet_comments(tweet_id=99)",
    "search_tweets(keyword='SECOND')",
    "search_tweets(keyword='#t')",
    "search_tweets(keyword=3)",
    "get_user_tweets(username='john')",
    "get_user_stats(username='john')",
    "get_user_stats(username='alice')",
    "get_user_stats(username=['john'])",
    "follow_user(username_to_follow='alice')",
    "follow_user(username_to_follow='zoe')",
    "unfollow_user(username_to_unfollow='bob')",
    "unfollow_user(username_to_unfollow='bob')",
    "list_all_following()",
    "post_tweet()",
    "post_tweet(content='a', tags=[], mentions=[], extra=1)",
    "post_tweet(content='a', tags=None, mentions=None)",
    "get_tweet(tweet_id=10)",
]


def test_quirks_match_official() -> None:
    config = {
        "username": "john",
        "password": "john123",
        "tweet_counter": 5,
        "tweets": {
            "1": {"id": 1, "username": "alice", "content": "Hi", "tags": ["#x"], "mentions": []},
            "2": {"id": 2, "username": "john", "content": "Yo", "tags": [], "mentions": []},
        },
        "comments": {"1": [{"user": "bob", "comment": "nice"}]},
        "retweets": {"john": [2]},
    }
    compare_with_official(QUIRK_CALLS, config)
    compare_with_official(QUIRK_CALLS)
