"""The 2025.10.2 behaviour of GorillaFileSystem, MessageAPI, TwitterAPI and TicketAPI, against
the official 2025.10.2 classes.

One or more tests per difference listed in ``docs/data-versions.md`` (each fails on today's
behaviour). Runs only with ``TOOLENV_DATA_VERSION=2025.10.2``, when ``tests/oracle.py`` imports
the official package of that release.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from envs import backend_class
from tests.oracle import call_both, compare_with_official, official_pair
from tests.release_oracle import only_on_release

pytestmark = [pytest.mark.release, only_on_release("2025.10.2")]

VERSION = "2025.10.2"
SETTINGS = settings(max_examples=80, deadline=None)

TREE = {
    "root": {
        "workspace": {
            "type": "directory",
            "contents": {
                "docs": {
                    "type": "directory",
                    "contents": {
                        "notes.txt": {"type": "file", "content": "b\na\nc"},
                        "inner": {
                            "type": "directory",
                            "contents": {
                                "deep": {
                                    "type": "directory",
                                    "contents": {"leaf.txt": {"type": "file", "content": "leaf"}},
                                }
                            },
                        },
                    },
                },
                "log.txt": {"type": "file", "content": "one\ntwo\nthree"},
                "src": {
                    "type": "directory",
                    "contents": {
                        "main.py": {"type": "file", "content": "print(1)"},
                        "lib": {"type": "directory", "contents": {}},
                    },
                },
            },
        }
    }
}

#: path segments for cd and find: real directories at several depths, files, ".", "..", missing
SEGMENTS = ["docs", "inner", "deep", "src", "lib", "workspace", ".", "..", "notes.txt", "missing", ""]
#: single-level names that exist in both releases' cd, to move somewhere first
PLACES = [[], ["docs"], ["docs", "inner"], ["docs", "inner", "deep"], ["src"], ["src", "lib"]]


def fs_pair(config: Optional[dict] = None, long_context: bool = False) -> tuple[Any, Any]:
    return official_pair(backend_class("GorillaFileSystem", VERSION), TREE if config is None else config, long_context)


def same_cwd(ours: Any, theirs: Any) -> None:
    """The current directory is private state: compare it through ``pwd``."""
    call_both(ours, theirs, "pwd")


def go(ours: Any, theirs: Any, place: list[str]) -> None:
    for folder in place:
        call_both(ours, theirs, "cd", folder)
    same_cwd(ours, theirs)


paths = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["", "/"]),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4),
    st.sampled_from(["", "/", "//"]),
)


def test_our_classes_are_the_release_subclasses() -> None:
    for name in ("GorillaFileSystem", "MessageAPI", "TwitterAPI", "TicketAPI"):
        cls = backend_class(name, VERSION)
        assert cls.data_version == VERSION and cls.__module__.startswith("envs.v2025_10_2.")


# -- GorillaFileSystem ------------------------------------------------------------------------


@SETTINGS
@given(st.sampled_from(PLACES), st.lists(paths, min_size=1, max_size=4))
@example([], ["docs/inner/deep"])
@example(["docs", "inner"], ["/workspace/src"])
@example([], ["docs/missing"])
@example(["src"], ["lib/"])
def test_cd_walks_nested_and_absolute_paths(place: list[str], folders: list[str]) -> None:
    ours, theirs = fs_pair()
    go(ours, theirs, place)
    for folder in folders:
        call_both(ours, theirs, "cd", folder)
        same_cwd(ours, theirs)


def test_cd_nested_path_result() -> None:
    ours, theirs = fs_pair()
    assert call_both(ours, theirs, "cd", "docs/inner/deep") == '{"current_working_directory": "deep"}'
    assert call_both(ours, theirs, "pwd") == '{"current_working_directory": "/workspace/docs/inner/deep"}'
    assert call_both(ours, theirs, "cd", "/src") == '{"current_working_directory": "src"}'


@pytest.mark.parametrize("folder", ["missing", "docs/missing", "notes.txt", "../", "", "log.txt/"])
def test_cd_error_texts(folder: str) -> None:
    ours, theirs = fs_pair()
    result = call_both(ours, theirs, "cd", folder)
    assert "No such directory. You cannot use path to change directory." in result
    same_cwd(ours, theirs)


def test_cd_up_from_root_keeps_the_typo() -> None:
    ours, theirs = fs_pair()
    assert "Cuurent directory is already the root" in call_both(ours, theirs, "cd", "..")


@pytest.mark.parametrize("folder", [None, 5, ["docs"]])
def test_cd_non_string_folder(folder: Any) -> None:
    ours, theirs = fs_pair()
    call_both(ours, theirs, "cd", folder)
    same_cwd(ours, theirs)


FILE_NAMES = ["log.txt", "new.txt", "docs", "src", ".", "", None, "a/b", "bad|name", "notes.txt"]


@SETTINGS
@given(st.sampled_from(PLACES), st.sampled_from(FILE_NAMES), st.sampled_from(["", "hello", "x\ny"]))
@example([], "new.txt", "hello")
@example([], "a/b", "hello")
def test_echo(place: list[str], file_name: Any, content: str) -> None:
    ours, theirs = fs_pair()
    go(ours, theirs, place)
    call_both(ours, theirs, "echo", content, file_name)
    call_both(ours, theirs, "ls", True)


def test_echo_creates_a_missing_file() -> None:
    ours, theirs = fs_pair()
    assert call_both(ours, theirs, "echo", "hi", "fresh.txt") == "None"
    assert call_both(ours, theirs, "cat", "fresh.txt") == '{"file_content": "hi"}'
    # writing again overwrites (the file now exists)
    call_both(ours, theirs, "echo", "again", "fresh.txt")
    assert call_both(ours, theirs, "cat", "fresh.txt") == '{"file_content": "again"}'


@SETTINGS
@given(st.sampled_from(PLACES), st.sampled_from(FILE_NAMES))
@example([], "missing.txt")
@example([], "docs")
def test_cat(place: list[str], file_name: Any) -> None:
    ours, theirs = fs_pair()
    go(ours, theirs, place)
    call_both(ours, theirs, "cat", file_name)


find_paths = st.one_of(paths, st.sampled_from([".", "/", "", "./", "nowhere"]))


@SETTINGS
@given(st.sampled_from(PLACES), find_paths, st.sampled_from([None, "txt", "lib", "e", "", "zzz"]))
@example([], "docs", None)
@example(["src"], "/nowhere/", "py")
def test_find_searches_the_current_directory(place: list[str], path: str, name: Optional[str]) -> None:
    ours, theirs = fs_pair()
    go(ours, theirs, place)
    call_both(ours, theirs, "find", path, name)


def test_find_result_prefix() -> None:
    ours, theirs = fs_pair()
    call_both(ours, theirs, "cd", "src")
    assert call_both(ours, theirs, "find", "docs/", "py") == '{"matches": ["docs/main.py"]}'


def test_find_non_string_path() -> None:
    ours, theirs = fs_pair()
    for path in (3, None, ["docs"]):  # fails on rstrip before anything is searched
        assert "rstrip" in call_both(ours, theirs, "find", path)


def test_find_long_context_tree() -> None:
    ours, theirs = fs_pair(long_context=True)
    call_both(ours, theirs, "find", "anything")


SOURCES = ["log.txt", "docs", "src", "missing"]
DESTINATIONS = ["docs/x", "/", "x/", "new.txt", "docs", "src", "log.txt"]


@SETTINGS
@given(st.sampled_from(["mv", "cp"]), st.sampled_from(SOURCES), st.sampled_from(DESTINATIONS))
@example("mv", "log.txt", "docs/x")
@example("cp", "log.txt", "docs/x")
def test_mv_cp_path_in_destination(tool: str, source: str, destination: str) -> None:
    ours, theirs = fs_pair()
    call_both(ours, theirs, tool, source, destination)
    call_both(ours, theirs, "find")


def test_rmdir() -> None:
    ours, theirs = fs_pair()
    for dir_name in ("docs", "log.txt", "missing", ".", "src"):
        call_both(ours, theirs, "rmdir", dir_name)
    call_both(ours, theirs, "cd", "src")
    call_both(ours, theirs, "rmdir", "lib")  # empty: removed
    call_both(ours, theirs, "cd", "..")
    call_both(ours, theirs, "rmdir", "src")  # not empty: main.py is left
    call_both(ours, theirs, "find")


def test_rmdir_non_empty_text() -> None:
    ours, theirs = fs_pair()
    assert (
        call_both(ours, theirs, "rmdir", "docs") == '{"error": "rmdir: failed to remove \'docs\': Directory not empty"}'
    )


def test_file_system_session_against_official_engine() -> None:
    calls = [
        "cd(folder='docs/inner')",
        "pwd()",
        "find(path='elsewhere')",
        "echo(content='note', file_name='made.txt')",
        "cat(file_name='made.txt')",
        "cat(file_name='deep')",
        "cd(folder='/')",
        "cd(folder='..')",
        "mv(source='log.txt', destination='docs/log.txt')",
        "cp(source='log.txt', destination='a/b')",
        "rmdir(dir_name='docs')",
    ]
    compare_with_official("GorillaFileSystem", calls, copy.deepcopy(TREE))


# -- MessageAPI -------------------------------------------------------------------------------

MESSAGE_LOGIN = "message_login(user_id='USR001')"


def test_delete_message() -> None:
    ours, theirs = official_pair(backend_class("MessageAPI", VERSION))
    call_both(ours, theirs, "delete_message", "USR002")  # not logged in
    call_both(ours, theirs, "message_login", "USR001")
    call_both(ours, theirs, "send_message", "USR003", "again")
    call_both(ours, theirs, "send_message", "USR003", "Could you upload the file?")  # a duplicate
    for receiver in ("USR003", "USR003", "USR003", "USR003", "USR002", "USR999", 2):
        call_both(ours, theirs, "delete_message", receiver)


def test_delete_message_through_the_executor() -> None:
    results = compare_with_official(
        "MessageAPI",
        [MESSAGE_LOGIN, "delete_message(receiver_id='USR002')", "delete_message(receiver_id='USR002', message_id=1)"],
    )
    assert '"message_id": "USR002"' in results[1] and "first message" in results[1]
    assert results[2].startswith("Error during execution: ")  # the doc's message_id is no parameter


# -- TwitterAPI -------------------------------------------------------------------------------

TWITTER_LOGIN = "authenticate_twitter(username='john', password='john123')"


def test_comment_not_logged_in_is_an_execution_error() -> None:
    results = compare_with_official(
        "TwitterAPI", ["comment(tweet_id=0, comment_content='hi')", "comment(tweet_id='x', comment_content=1)"]
    )
    assert results[0] == "Error during execution: exceptions must derive from BaseException"


def test_comment() -> None:
    ours, theirs = official_pair(backend_class("TwitterAPI", VERSION))
    call_both(ours, theirs, "comment", 0, "hi")
    call_both(ours, theirs, "authenticate_twitter", "john", "john123")
    call_both(ours, theirs, "post_tweet", "hello")
    call_both(ours, theirs, "comment", 0, "hi")
    call_both(ours, theirs, "comment", 7, "hi")


def test_list_all_following_is_a_bare_list() -> None:
    calls = ["list_all_following()", TWITTER_LOGIN, "list_all_following()", "follow_user(username_to_follow='eve')"]
    results = compare_with_official("TwitterAPI", [*calls, "list_all_following()"])
    assert results[2] == "['alice', 'bob']" and results[4] == "['alice', 'bob', 'eve']"


def test_list_all_following_returns_the_list_itself() -> None:
    ours, theirs = official_pair(backend_class("TwitterAPI", VERSION), {"authenticated": True})
    call_both(ours, theirs, "list_all_following")
    assert ours.list_all_following() is ours.following_list
    assert theirs.list_all_following() is theirs.following_list


# -- TicketAPI --------------------------------------------------------------------------------


def test_ticket_get_login_status_key() -> None:
    results = compare_with_official(
        "TicketAPI",
        ["ticket_get_login_status()", "ticket_login(username='ann', password='pw')", "ticket_get_login_status()"],
    )
    assert results[0] == '{"username": false}' and results[2] == '{"username": true}'
    ours, theirs = official_pair(backend_class("TicketAPI", VERSION), {"current_user": "bo"})
    call_both(ours, theirs, "ticket_get_login_status")
