"""MessageAPI: the reproduced quirks, checked by value and against the official engine."""

from __future__ import annotations

import json
import random

from envs.message import MessageAPI
from tests.oracle import compare_with_official as _compare
from tests.oracle import run_ours
from toolenv.executor import Session

CLS = "MessageAPI"


def run(calls: list[str], config: dict | None = None) -> tuple[Session, list[str]]:
    return run_ours(CLS, calls, config)


def compare_with_official(calls: list[str], config: dict | None = None) -> list[str]:
    return _compare(CLS, calls, config)


def test_public_state_order_and_defaults() -> None:
    api = MessageAPI()
    assert list(api.public_state()) == [
        "generated_ids",
        "user_count",
        "user_map",
        "inbox",
        "message_count",
        "current_user",
    ]
    assert api.generated_ids == set() and api.user_map["Daniel"] == "USR004" and len(api.inbox) == 3
    MessageAPI().inbox.append({"USR001": "x"})
    assert len(MessageAPI().inbox) == 3  # defaults are never shared


def test_message_ids_are_seeded_unique_and_nested() -> None:
    _, out = run(
        [
            "message_login(user_id='USR001')",
            "send_message(receiver_id='USR002', message='hi')",
            "send_message(receiver_id='USR003', message='yo')",
        ]
    )
    rng = random.Random(200191)
    first, second = rng.randint(10000, 99999), rng.randint(10000, 99999)
    assert json.loads(out[1]) == {
        "sent_status": True,
        "message_id": {"new_id": first},
        "message": "Message sent to 'USR002' successfully.",
    }
    assert json.loads(out[2])["message_id"] == {"new_id": second}


def test_id_draw_skips_generated_ids() -> None:
    taken = random.Random(5).randint(10000, 99999)
    api = MessageAPI()
    api.load_scenario({"random_seed": 5, "generated_ids": {taken}, "current_user": "USR001"})
    result = api.send_message("USR002", "x")
    assert result["message_id"]["new_id"] != taken and len(api.generated_ids) == 2


def test_exhausted_id_space_is_an_error_not_a_hang() -> None:
    api = MessageAPI()
    api.load_scenario({"generated_ids": set(range(10000, 100000)), "current_user": "USR001"})
    result = api.send_message("USR002", "x")
    assert "error" in result and api.message_count == 3 and len(api.inbox) == 3


def test_list_valued_inbox_breaks_search() -> None:
    config = {"inbox": [{"USR002": ["Meeting at 3 PM"]}], "current_user": "USR001"}
    _, out = run(["search_messages(keyword='meeting')", "view_messages_sent()", "get_message_stats()"], config)
    assert out[0] == "Error during execution: 'list' object has no attribute 'lower'"
    assert out[1] == '{"messages": {"USR002": [["Meeting at 3 PM"]]}}'


def test_delete_removes_the_first_equal_item() -> None:
    config = {"inbox": [{"USR002": "same"}, {"USR003": "x"}, {"USR002": "same"}], "current_user": "USR001"}
    session, out = run(["delete_message(receiver_id='USR002')"], config)
    assert session.instances[CLS].inbox == [{"USR003": "x"}, {"USR002": "same"}]
    assert session.instances[CLS].message_count == 3  # not decremented


QUIRK_CALLS = [
    "send_message(receiver_id='USR002', message='x')",
    "search_messages(keyword=5)",
    "message_get_login_status()",
    "message_login(user_id='USR999')",
    "message_login(user_id=['USR001'])",
    "message_login(user_id='USR001')",
    "get_user_id(user=['Alice'])",
    "get_user_id(user='Zed')",
    "get_user_id(user='Bob')",
    "add_contact(user_name='Bob')",
    "add_contact(user_name=['x'])",
    "add_contact(user_name='Eve')",
    "list_users()",
    "send_message(receiver_id='USR005', message=['a', 1])",
    "send_message(receiver_id='USR002', message='Could you upload the file?')",
    "send_message(receiver_id='USR404', message='x')",
    "search_messages(keyword='UPLOAD')",
    "search_messages(keyword=5)",
    "view_messages_sent()",
    "get_message_stats()",
    "delete_message(receiver_id='USR002')",
    "delete_message(receiver_id='USR002')",
    "delete_message(receiver_id='USR002')",
    "delete_message(receiver_id=['USR003'])",
    "get_message_stats()",
    "send_message(receiver_id='USR003')",
    "list_users(1)",
]


def test_quirks_match_official() -> None:
    compare_with_official(QUIRK_CALLS)


def test_scenario_shapes_match_official() -> None:
    # inbox items seen in the official scenarios: lists, dicts, several pairs, an empty item
    config = {
        "user_count": 5,
        "user_map": {"John": "USR001", "Jane": "USR002", "Sam": "USR005"},
        "inbox": [{"USR001": {}}, {"USR002": {"USR001": ["a"]}, "USR003": "b"}, {"USR005": ["c"]}],
        "message_count": 0,
        "current_user": "USR001",
        "random_seed": 3,
    }
    calls = [
        "view_messages_sent()",
        "get_message_stats()",
        "search_messages(keyword='a')",
        "add_contact(user_name='Kim')",
        "add_contact(user_name='Lee')",
        "delete_message(receiver_id='USR001')",
        "send_message(receiver_id='USR005', message='ok')",
    ]
    compare_with_official(calls, config)
    compare_with_official(
        ["get_message_stats()", "delete_message(receiver_id='x')"], {"inbox": [{}], "current_user": "USR002"}
    )
