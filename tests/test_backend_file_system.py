"""GorillaFileSystem: the reproduced quirks, long-context loading and bounded hostile input.

Comparisons against the official class are skipped when bfcl-eval is not installed. The
recursion-depth cases are checked on our side only: where the reference overflows depends on
the caller's stack depth (see ``envs.file_system``), which differs under pytest.
"""

from __future__ import annotations

import copy
import importlib
import time
from typing import Any

import pytest

import envs.file_system as fs
from envs._official import official_literal
from envs.file_system import Directory, File, GorillaFileSystem
from tests.oracle import canonical, require_official, state_differences
from toolenv.executor import Session, stringify

SCENARIO = {
    "root": {
        "workspace": {
            "type": "directory",
            "contents": {
                "docs": {
                    "type": "directory",
                    "contents": {
                        "notes.txt": {"type": "file", "content": "b\na\nc"},
                        "inner": {"type": "directory", "contents": {}},
                    },
                },
                "log.txt": {"type": "file", "content": "one\ntwo\nthree"},
                "data.csv": {"type": "file", "content": "x,y\n1,2"},
            },
        },
        "ignored_second_root": {"type": "directory", "contents": {}},
    }
}


def official_class() -> type:
    require_official()
    module = importlib.import_module("bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system")
    return module.GorillaFileSystem


def pair(config: dict[str, Any] | None = None, long_context: bool = False) -> tuple[GorillaFileSystem, Any]:
    ours = GorillaFileSystem()
    ours.load_scenario(copy.deepcopy(SCENARIO if config is None else config), long_context=long_context)
    theirs = official_class()()
    theirs._load_scenario(copy.deepcopy(SCENARIO if config is None else config), long_context=long_context)
    return ours, theirs


def outcome(instance: Any, name: str, kwargs: dict[str, Any]) -> str:
    try:
        return stringify(getattr(instance, name)(**kwargs))
    except Exception as exc:  # the executor's rendering of a raised error
        return f"Error during execution: {exc}"


def cwd_chain(instance: Any) -> list[Any]:
    names, node = [], instance._current_dir
    while node is not None:
        names.append(node.name)
        node = node.parent
    return names


def run_both(
    calls: list[tuple[str, dict[str, Any]]], config: dict | None = None, long_context: bool = False
) -> list[str]:
    """Run the calls on both; every result, the state and the current directory must agree."""
    ours, theirs = pair(config, long_context)
    results = []
    for name, kwargs in calls:
        mine, official = outcome(ours, name, copy.deepcopy(kwargs)), outcome(theirs, name, copy.deepcopy(kwargs))
        assert mine == official, f"{name}({kwargs})"
        assert not state_differences(ours, theirs), f"after {name}({kwargs})"
        assert cwd_chain(ours) == cwd_chain(theirs), f"after {name}({kwargs})"
        results.append(mine)
    return results


def c(tool: str, /, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    return tool, kwargs


# -- structure -------------------------------------------------------------------------------


def test_public_attributes_and_node_layout() -> None:
    ours, theirs = pair()
    assert list(ours.public_state()) == ["long_context", "root"]
    assert not state_differences(ours, theirs)
    assert list(vars(File("a", "b"))) == ["name", "content"]
    assert list(vars(Directory("d"))) == ["name", "parent", "contents"]
    # compared like the reference: parent is ignored, name and contents are not
    assert Directory("d", Directory("p")) == Directory("d")
    assert File("a", "x") != File("a", "y")
    assert repr(File("a", "b")) == "<<File: a, Content: b>>"
    assert repr(Directory("d", Directory("p"))) == "<Directory: d, Parent: p, Contents: {}>"


def test_root_is_named_after_first_key_and_default_is_slash() -> None:
    ours, _ = pair()
    assert ours.root.name == "workspace" and list(ours.root.contents) == ["docs", "log.txt", "data.csv"]
    empty = GorillaFileSystem()
    empty.load_scenario({}, long_context=True)
    assert empty.root.name == "/" and empty.root.contents == {}  # no filler without a tree
    assert run_both([c("pwd"), c("cd", folder="..")], config={}) == [
        '{"current_working_directory": "//"}',
        '{"error": "Current directory is already the root. Cannot go back."}',
    ]


@pytest.mark.parametrize(
    "config",
    [SCENARIO, {"root": {"r": {"type": "directory", "contents": {"a.txt": {"type": "file", "content": "x"}}}}}],
)
def test_long_context_loading_matches_official(config: dict) -> None:
    ours, theirs = pair(config, long_context=True)
    assert not state_differences(ours, theirs)
    suffix = official_literal("long_context.py", "FILE_CONTENT_EXTENSION")
    images = official_literal("long_context.py", "POPULATE_FILE_EXTENSION")
    if config is SCENARIO:
        assert ours.root.contents["log.txt"].content == "one\ntwo\nthree"  # in FILES_TAIL_USED
        assert ours.root.contents["data.csv"].content == "x,y\n1,2" + suffix
        docs = ours.root.contents["docs"]
        assert list(docs.contents) == ["notes.txt", "inner"]  # has a sub-directory: no filler
        assert list(docs.contents["inner"].contents) == images
    else:
        assert list(ours.root.contents) == ["a.txt", *images]  # a root without sub-directories


def test_long_context_filler_clash_raises_like_official() -> None:
    image = official_literal("long_context.py", "POPULATE_FILE_EXTENSION")[3]
    config = {"root": {"r": {"type": "directory", "contents": {image: {"type": "file", "content": ""}}}}}
    with pytest.raises(ValueError) as ours_error:
        GorillaFileSystem().load_scenario(copy.deepcopy(config), long_context=True)
    with pytest.raises(ValueError) as official_error:
        official_class()()._load_scenario(copy.deepcopy(config), long_context=True)
    assert str(ours_error.value) == str(official_error.value)


# -- quirks, against the official class --------------------------------------------------------


def test_navigation_quirks() -> None:
    results = run_both(
        [
            c("cd", folder="docs/inner"),
            c("cd", folder="/docs"),
            c("cd", folder="docs/"),
            c("pwd"),
            c("cd", folder="inner//"),
            c("pwd"),
            c("cd", folder="../"),
            c("cd", folder="."),
            c("cd", folder=""),
            c("pwd"),
            c("cd", folder="log.txt"),
            c("cd", folder="nope"),
            c("cd", folder=".."),
            c("find", path="/docs/"),
            c("find", path="docs//inner"),
            c("find", path=""),
            c("find", name="t"),
            c("find", path=None),
            c("find", name=3),
            c("cd", folder=None),
            c("ls", a=True),
        ]
    )
    assert results[0].startswith('{"error": "cd: docs/inner: Unsupported path.')
    assert results[2] == '{"current_working_directory": "docs"}'  # the name only, not a path
    assert results[3] == '{"current_working_directory": "/workspace/docs"}'  # root name included
    assert results[13] == '{"matches": ["/docs/notes.txt", "/docs/inner"]}'


def test_file_operation_quirks() -> None:
    results = run_both(
        [
            c("echo", content="printed", file_name=""),
            c("echo", content="new\ntext", file_name="log.txt"),
            c("echo", content="x", file_name="missing"),
            c("echo", content="x", file_name="docs"),
            c("echo", content=["not", "text"], file_name="data.csv"),
            c("cat", file_name="data.csv"),
            c("wc", file_name="data.csv"),
            c("du"),
            c("cat", file_name="docs"),
            c("cat", file_name="a|b"),
            c("touch", file_name="new.txt"),
            c("touch", file_name="new.txt"),
            c("mkdir", dir_name="x:y"),
            c("mkdir", dir_name=""),
            c("mkdir", dir_name=["l"]),
            c("touch", file_name=None),
            c("tail", file_name="log.txt", lines=0),
            c("tail", file_name="log.txt", lines=-1),
            c("tail", file_name="log.txt", lines=1.5),
            c("tail", file_name="log.txt", lines=99.5),
            c("wc", file_name="log.txt", mode="x"),
            c("grep", file_name="log.txt", pattern=1),
        ]
    )
    assert results[0] == '{"terminal_output": "printed"}'
    assert results[3] == "Error during execution: 'Directory' object has no attribute '_write'"
    assert results[16] == '{"last_lines": "new\\ntext"}'


def test_diff_sort_du() -> None:
    results = run_both(
        [
            c("cd", folder="docs"),
            c("touch", file_name="b.txt"),
            c("echo", content="b\nX\nc\nextra", file_name="b.txt"),
            c("diff", file_name1="notes.txt", file_name2="b.txt"),
            c("diff", file_name1="notes.txt", file_name2="inner"),
            c("sort", file_name="notes.txt"),
            c("du"),
            c("du", human_readable=True),
            c("cd", folder=".."),
            c("touch", file_name="big"),
            c("echo", content="é" * 100_000, file_name="big"),
            c("du", human_readable=True),
        ]
    )
    assert results[3] == '{"diff_lines": "- a\\n+ X"}'  # pairwise, the extra line is ignored
    assert results[6] == '{"disk_usage": "16 bytes"}'  # the current directory only
    assert results[11] == '{"disk_usage": "195.35 KB"}'


def test_move_copy_remove_quirks() -> None:
    results = run_both(
        [
            c("rm", file_name="docs"),
            c("ls"),
            c("rmdir", dir_name="log.txt"),
            c("mkdir", dir_name="d"),
            c("mkdir", dir_name="e"),
            c("cd", folder="e"),
            c("touch", file_name="f"),
            c("cd", folder=".."),
            c("cp", source="e", destination="e2"),
            c("cd", folder="e2"),
            c("echo", content="shared", file_name="f"),
            c("cd", folder=".."),
            c("cd", folder="e"),
            c("cat", file_name="f"),  # cp shares the File objects
            c("cd", folder=".."),
            c("mv", source="e", destination="d"),
            c("cd", folder="d"),
            c("cd", folder="e"),
            c("mkdir", dir_name="g"),
            c("cd", folder="g"),
            c("pwd"),
            c("cd", folder=".."),
            c("cd", folder=".."),
            c("pwd"),  # the children of a moved directory keep their old parent
            c("cd", folder=".."),
            c("cp", source="data.csv", destination="d"),
            c("cp", source="data.csv", destination="d"),
            c("cp", source="e2", destination="d"),
            c("cp", source="e2", destination="d"),
            c("mv", source="data.csv", destination="d"),
            c("mv", source="data.csv", destination="d/x"),
            c("mv", source="log.txt", destination="renamed"),
            c("cp", source="renamed", destination="log.txt"),
            c("mv", source="d", destination="renamed"),
            c("rmdir", dir_name="d"),
            c("rmdir", dir_name="nope"),
            c("ls"),
        ]
    )
    assert results[0] == '{"result": "\'docs\' removed"}'
    assert results[13] == '{"file_content": "shared"}'
    assert results[26] == "Error during execution: File 'data.csv' already exists in directory 'd'."
    assert results[28] == "Error during execution: Directory 'e2' already exists in directory 'd'."


def test_moved_directory_shares_its_contents_with_the_old_object() -> None:
    results = run_both(
        [
            c("mkdir", dir_name="d"),
            c("mkdir", dir_name="e"),
            c("cd", folder="e"),
            c("mkdir", dir_name="g"),
            c("cd", folder=".."),
            c("mv", source="e", destination="d"),
            c("cd", folder="d"),
            c("cd", folder="e"),
            c("cd", folder="g"),
            c("cd", folder=".."),  # back in the detached original "e"
            c("mkdir", dir_name="z"),
            c("cd", folder=".."),
            c("pwd"),
            c("cd", folder="d"),
            c("cd", folder="e"),
            c("ls"),
        ]
    )
    assert results[12] == '{"current_working_directory": "/workspace"}'
    assert results[15] == '{"current_directory_content": ["g", "z"]}'


def test_dot_entries_act_on_the_current_directory() -> None:
    dot = [c("mkdir", dir_name=".")]
    results = run_both(
        dot
        + [
            c("ls", a=True),
            c("ls"),
            c("cat", file_name="."),
            c("rmdir", dir_name="."),
            c("echo", content="x", file_name="."),
            c("wc", file_name="."),
            c("rm", file_name="."),
            c("ls", a=True),
        ]
    )
    assert results[3] == '{"error": "cat: \'.\': Is a directory"}'
    # copying or moving "." copies/moves the current directory into itself (one cycle each)
    run_both(dot + [c("cp", source=".", destination="copy"), c("ls", a=True), c("cd", folder="copy"), c("pwd")])
    run_both(dot + [c("mv", source=".", destination="moved"), c("ls", a=True), c("pwd")])


# -- recursion and hostile input (our side only) ----------------------------------------------


def chain(depth: int, leaf_file: bool) -> GorillaFileSystem:
    system = GorillaFileSystem()
    system.load_scenario({})
    node = system.root
    for level in range(depth):
        node = node._new_directory(f"d{level}")
    if leaf_file:
        node._new_file("f", "x")
    return system


def test_depth_limits_raise_the_reference_recursion_error() -> None:
    # measured on the reference under `python -m tests.parity` (see envs.file_system)
    assert "matches" in chain(986, False).find()
    with pytest.raises(RecursionError, match="^maximum recursion depth exceeded while calling a Python object$"):
        chain(987, False).find()
    assert chain(493, False).du() == {"disk_usage": "0 bytes"}
    assert chain(492, True).du() == {"disk_usage": "1 bytes"}
    with pytest.raises(RecursionError, match="^maximum recursion depth exceeded$"):
        chain(493, True).du()
    with pytest.raises(RecursionError, match="^maximum recursion depth exceeded$"):
        chain(494, False).du()


def test_directory_copied_into_itself_is_a_cycle() -> None:
    session = Session(["GorillaFileSystem"], {"GorillaFileSystem": copy.deepcopy(SCENARIO)})
    texts = [
        r.text
        for r in session.execute_all(
            [
                "cp(source='docs', destination='docs')",
                "find()",
                "du()",
                "cd(folder='docs')",
                "cd(folder='docs')",
                "pwd()",
            ]
        )
    ]
    assert texts[0] == "{\"result\": \"'docs' copied to 'docs/docs'\"}"
    assert texts[1] == "Error during execution: maximum recursion depth exceeded while calling a Python object"
    assert texts[2] == "Error during execution: maximum recursion depth exceeded"
    assert texts[5] == '{"current_working_directory": "/workspace/docs/docs"}'


def test_exponential_tree_is_refused_quickly() -> None:
    calls = ["mkdir(dir_name='A')", "cd(folder='A')", "touch(file_name='f')", "cd(folder='..')"]
    for _ in range(40):  # each round doubles the number of paths through shared sub-directories
        calls += [
            "cp(source='A', destination='B')",
            "mkdir(dir_name='N')",
            "mv(source='A', destination='N')",
            "mv(source='B', destination='N')",
            "mv(source='N', destination='A')",
        ]
    session = Session(["GorillaFileSystem"], {})
    session.execute_all(calls)
    started = time.perf_counter()
    texts = [r.text for r in session.execute_all(["find()", "find(name='nothing')", "du()", "du(human_readable=True)"])]
    text = repr(session.instances["GorillaFileSystem"].root)  # a checker may print the state
    assert time.perf_counter() - started < 2.0
    assert (
        texts
        == ['{"error": "find: \'.\': too many entries to list"}'] * 2
        + ['{"error": "du: too many entries to measure"}'] * 2
    )
    assert len(text) == fs._REPR_MAX_CHARS + 1 and text.startswith("<Directory: /, Parent: None, Contents: {'A': ")


def test_long_paths_are_refused_by_find() -> None:
    name = "n" * 100_000
    session = Session(["GorillaFileSystem"], {})
    session.execute_all([f"mkdir(dir_name='{name}')", f"cd(folder='{name}')"] * 300 + ["cd(folder='/')"])
    started = time.perf_counter()
    assert session.execute_text("find()").text == '{"error": "find: \'.\': too many entries to list"}'
    assert time.perf_counter() - started < 2.0
    assert session.execute_text("du()").text == '{"disk_usage": "0 bytes"}'


def test_canonical_state_and_repr_match_official() -> None:
    ours, theirs = pair(long_context=True)
    assert canonical(ours.root) == canonical(theirs.root)
    assert repr(ours.root) == repr(theirs.root)
    for instance in (ours, theirs):  # a cycle prints as "{...}" where the dict repeats
        instance.cp(source="docs", destination="docs")
        instance._current_dir = instance.root.contents["docs"]
        instance.mkdir(dir_name=("tuple", 1))
    assert repr(ours.root) == repr(theirs.root)
    assert "{...}" in repr(ours.root)


def test_the_official_recursion_overflow_text_depends_on_the_callers_stack_depth() -> None:
    """Why tests/parity.py accepts either recursion-overflow text: on a cyclic tree (a folder
    holding itself) the official ``du`` raises RecursionError whose message alternates between
    two texts with the depth it is called from, so no engine can match it call for call."""
    ours, theirs = pair(
        {"root": {"w": {"type": "directory", "contents": {"docs": {"type": "directory", "contents": {}}}}}}
    )
    for side in (ours, theirs):
        folder = side._current_dir.contents["docs"]
        folder.contents["loop"] = folder

    def official_at(depth: int) -> str:
        if depth:
            return official_at(depth - 1)
        try:
            theirs._current_dir = theirs._current_dir.contents["docs"]
            theirs.du()
        except RecursionError as exc:
            return str(exc)
        finally:
            theirs._current_dir = theirs._current_dir.parent
        return "no error"

    texts = {official_at(depth) for depth in range(12)}
    assert texts == {
        "maximum recursion depth exceeded",
        "maximum recursion depth exceeded while calling a Python object",
    }
    ours._current_dir = ours._current_dir.contents["docs"]
    with pytest.raises(RecursionError, match="^maximum recursion depth exceeded"):
        ours.du()
