"""GorillaFileSystem: an in-memory file tree driven by shell-like tools (``ls``, ``cd``, ``mv`` …).

Written for toolenv; behaviour-identical to ``gorilla_file_system.py`` of bfcl-eval, bugs
included. The reproduced quirks are listed on :class:`GorillaFileSystem` and commented where
they happen. Long-context filler (file-content extension, populated image names, the names
exempt from the extension) is read from the official ``long_context.py`` at run time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Iterator, Optional, Union

from envs._official import official_literal
from envs.base import Backend

_LONG_CONTEXT_FILE = "long_context.py"

#: characters that mkdir/touch/echo/cat refuse in a name (tested with ``char in name``, so a
#: non-string name raises the same TypeError as the reference)
_FORBIDDEN_NAME_CHARS = '|/\\?%*:"><'

#: The reference walks the tree recursively for ``find`` and ``du``, so a tree deeper than
#: Python's recursion limit (or a cyclic one: ``cp``/``mv`` of a directory into itself makes
#: one) ends in a RecursionError. We walk iteratively and raise the same error, with the same
#: message, where the reference's recursion would overflow: ``find`` recurses once per
#: directory (one frame per level), ``du`` once per file or directory (two frames per level).
#: Depth 1 is the start directory's own entries. Measured on the reference under the default
#: recursion limit (1000), called from ``python -m tests.parity``; the exact point moves by a
#: level per frame of caller stack, which matters only for trees hundreds of levels deep.
_FIND_MAX_DIRECTORY_DEPTH = 986
_DU_MAX_DEPTH = 493
_FIND_RECURSION_MESSAGE = "maximum recursion depth exceeded while calling a Python object"
_DU_RECURSION_MESSAGE = "maximum recursion depth exceeded"

#: Deliberate divergence, hostile input only: ``cp`` shares sub-directories between the copy
#: and the original, so a few dozen calls can build a tree whose number of *paths* is
#: exponential (or whose paths are very long); the reference's ``find``/``du`` would then run
#: for hours or exhaust memory. We stop after this many visited entries, and ``find`` refuses
#: a listing longer than this many characters, with an error dict. Genuine trees, long-context
#: ones included, stay orders of magnitude below both limits.
_WALK_MAX_ENTRIES = 300_000
_FIND_MAX_CHARS = 20_000_000

#: repr() of a Directory stops after this many characters (deliberate divergence, see there)
_REPR_MAX_CHARS = 1_000_000

_DU_UNITS = ("B", "KB", "MB", "GB", "TB")


@lru_cache(maxsize=1)
def _long_context_filler() -> tuple[str, frozenset[str], tuple[str, ...]]:
    """``(content suffix, names exempt from it, image names added to leaf directories)``."""
    return (
        official_literal(_LONG_CONTEXT_FILE, "FILE_CONTENT_EXTENSION"),
        frozenset(official_literal(_LONG_CONTEXT_FILE, "FILES_TAIL_USED")),
        tuple(official_literal(_LONG_CONTEXT_FILE, "POPULATE_FILE_EXTENSION")),
    )


def _valid_name(name: Any) -> bool:
    return not any(char in name for char in _FORBIDDEN_NAME_CHARS)


class File:
    """A file: compared by ``name`` and ``content`` (the reference's private modification time
    is not kept: nothing observable reads it)."""

    def __init__(self, name: str, content: str = "") -> None:
        self.name = name
        self.content = content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and self.name == other.name and self.content == other.content

    __hash__ = None  # type: ignore[assignment]  # like the reference: defines __eq__ only

    def __repr__(self) -> str:
        return f"<<File: {self.name}, Content: {self.content}>>"


class Directory:
    """A directory: ``contents`` maps names to File/Directory in insertion order (which is the
    order of ``ls`` and ``find``). Compared by ``name`` and ``contents``; ``parent`` is a
    back-link and is not compared."""

    def __init__(self, name: str, parent: Optional["Directory"] = None) -> None:
        self.name = name
        self.parent = parent
        self.contents: dict[Any, Union[File, Directory]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Directory) and self.name == other.name and self.contents == other.contents

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # The reference's text (a dict repr nested in f-strings, "{...}" for a contents dict
        # already being printed), built without recursion and cut after _REPR_MAX_CHARS: the
        # sharing that cp/mv create can make the full text exponentially long.
        pieces: list[str] = []
        size = 0
        printing: set[int] = set()  # ids of the contents dicts on the current path
        stack = [_directory_repr_pieces(self, printing)]
        while stack:
            piece = next(stack[-1], None)
            if piece is None:
                stack.pop()
            elif isinstance(piece, Directory):
                stack.append(_directory_repr_pieces(piece, printing))
            else:
                pieces.append(piece)
                size += len(piece)
                if size > _REPR_MAX_CHARS:  # deliberate divergence, hostile trees only
                    return "".join(pieces)[:_REPR_MAX_CHARS] + "…"
        return "".join(pieces)

    def _lookup(self, name: Any) -> Union[File, "Directory", None]:
        # Quirk: "." is the directory itself even when a child named "." exists (mkdir('.')
        # is allowed), so every tool that checks `name in contents` and then looks the name
        # up acts on the current directory for ".".
        if name == ".":
            return self
        return self.contents.get(name)

    def _new_file(self, name: Any, content: Any = "") -> File:
        if name in self.contents:
            raise ValueError(f"File '{name}' already exists in directory '{self.name}'.")
        created = self.contents[name] = File(name, content)
        return created

    def _new_directory(self, name: Any) -> "Directory":
        if name in self.contents:
            raise ValueError(f"Directory '{name}' already exists in directory '{self.name}'.")
        created = self.contents[name] = Directory(name, self)
        return created


def _directory_repr_pieces(directory: Directory, printing: set[int]) -> Iterator[Union[str, Directory]]:
    """The text of ``repr(directory)`` in pieces; a nested Directory is yielded for the caller
    to expand in place."""
    parent_name = directory.parent.name if directory.parent else None
    yield f"<Directory: {directory.name}, Parent: {parent_name}, Contents: "
    contents = directory.contents
    if id(contents) in printing:
        yield "{...}"
    else:
        printing.add(id(contents))
        yield "{"
        for index, (name, item) in enumerate(contents.items()):
            yield f"{', ' if index else ''}{name!r}: "
            yield item if isinstance(item, Directory) else repr(item)
        yield "}"
        printing.discard(id(contents))
    yield ">"


class GorillaFileSystem(Backend):
    """A file tree with a current directory.

    Compared state (in this order): ``long_context`` (the flag given to ``load_scenario``) and
    ``root`` (a :class:`Directory`). The current directory is private. Defaults: an empty root
    named ``"/"``; a scenario's ``"root"`` dict gives the root the name of its FIRST key and
    loads that entry's ``contents``. In long-context mode every loaded file not in
    ``FILES_TAIL_USED`` gets ``FILE_CONTENT_EXTENSION`` appended, and every loaded directory
    with no sub-directory gets the ``POPULATE_FILE_EXTENSION`` empty files after its own.

    Reproduced quirks: ``pwd`` always includes the root's name (``//`` at a root named ``/``);
    ``cd`` refuses any path with ``/`` except ``/`` itself and returns only the child's name;
    ``echo(..., file_name="")`` prints instead of writing; ``rm`` removes non-empty
    directories; ``mv``/``cp`` of a directory make a new Directory object that shares (mv) or
    shallow-copies (cp) the contents dict, so children keep their old parent and copies share
    sub-directories and files; ``cp`` into a directory checks the wrong key for a clash and
    then raises ValueError; ``diff`` ignores the extra lines of the longer file; ``du`` counts
    the current directory only; ``tail`` with 0 or a negative count slices from the front.
    """

    class_name = "GorillaFileSystem"
    doc_file = "gorilla_file_system.json"
    stateless = False

    def __init__(self) -> None:
        self.long_context: Any = False
        self.root: Directory = Directory("/", None)
        self._current_dir: Directory = self.root

    # -- loading -----------------------------------------------------------------------------

    def load_scenario(self, config: dict, long_context: bool = False) -> None:
        self.long_context = long_context
        if "root" in config:
            tree = config["root"]
            root_name = list(tree)[0]
            root = Directory(root_name, None)
            filler = _long_context_filler() if long_context else None
            self._load_into(root, tree[root_name]["contents"], filler)
        else:
            root = Directory("/", None)  # no long-context filler without a scenario tree
        self.root = root
        self._current_dir = root

    def _load_into(
        self, directory: Directory, entries: dict, filler: Optional[tuple[str, frozenset[str], tuple[str, ...]]]
    ) -> None:
        has_subdirectory = False
        contents = directory.contents
        for name, entry in entries.items():
            kind = entry["type"]
            if kind == "directory":
                has_subdirectory = True
                child = Directory(name, directory)
                self._load_into(child, entry["contents"], filler)
                contents[name] = child
            elif kind == "file":
                content = entry["content"]
                if filler is not None and name not in filler[1]:
                    content += filler[0]
                contents[name] = File(name, content)
            # any other type is skipped and does not count as a sub-directory
        if filler is not None and not has_subdirectory:
            images = filler[2]
            if contents.keys().isdisjoint(images):
                for image in images:
                    contents[image] = File(image)
            else:  # a clash: fail on it as the reference does
                for image in images:
                    directory._new_file(image)

    # -- helpers -----------------------------------------------------------------------------

    def _local_file(self, name: Any) -> Optional[File]:
        """The file ``name`` of the current directory, or None (missing, or a directory)."""
        if name in self._current_dir.contents:
            item = self._current_dir._lookup(name)
            if isinstance(item, File):
                return item
        return None

    def _resolve(self, path: Any) -> Optional[Directory]:
        """The directory at ``path`` (absolute or relative, any depth), or None."""
        if path is None or path == ".":
            return self._current_dir
        if path == "/":
            return self.root
        parts = path.strip("/").split("/")
        node: Union[File, Directory, None] = self.root if path.startswith("/") else self._current_dir
        for part in parts:
            node = node._lookup(part)  # type: ignore[union-attr]
            if not isinstance(node, Directory):
                return None
        return node  # type: ignore[return-value]

    @staticmethod
    def _walk(start: Directory) -> Iterator[tuple[Any, Any, int]]:
        """Yield ``(name, item, depth)`` for everything under ``start`` in the reference's
        recursive pre-order (an item, then its subtree, then its next sibling); depth 1 is
        ``start``'s own entries. Lazy: a cyclic tree is walked until the caller stops."""
        stack = [iter(start.contents.items())]
        while stack:
            for name, item in stack[-1]:
                yield name, item, len(stack)
                if isinstance(item, Directory):
                    stack.append(iter(item.contents.items()))
                    break
            else:
                stack.pop()

    # -- tools -------------------------------------------------------------------------------

    def pwd(self) -> dict:
        # Quirk: the reference's stop test compares a name with the root *object*, which is
        # never equal, so the walk always reaches the root and includes its name.
        names = []
        node: Optional[Directory] = self._current_dir
        while node is not None:
            names.append(node.name)
            node = node.parent
        names.reverse()
        return {"current_working_directory": "/" + "/".join(names)}

    def ls(self, a: bool = False) -> dict:
        names = list(self._current_dir.contents)
        if not a:
            names = [name for name in names if not name.startswith(".")]
        return {"current_directory_content": names}

    def cd(self, folder: str) -> dict:
        folder = folder.rstrip("/")
        if folder == "":
            folder = "/"
        if folder not in (".", "..", "/") and "/" in folder:
            return {"error": f"cd: {folder}: Unsupported path. Only one folder level at a time is supported."}
        if folder == "..":
            parent = self._current_dir.parent
            if parent:
                self._current_dir = parent
                return {}
            if self.root == self._current_dir:
                return {"error": "Current directory is already the root. Cannot go back."}
            return {"error": "cd: ..: No such directory"}
        target = self._resolve(folder)
        if target is None:
            return {"error": f"cd: '{folder}': No such file or directory"}
        self._current_dir = target
        # Quirk: only the entered directory's own name, not a path.
        return {"current_working_directory": target.name}

    def mkdir(self, dir_name: str) -> Optional[dict]:
        if not _valid_name(dir_name):
            return {"error": f"mkdir: cannot create directory '{dir_name}': Invalid character"}
        if dir_name in self._current_dir.contents:
            return {"error": f"mkdir: cannot create directory '{dir_name}': File exists"}
        self._current_dir._new_directory(dir_name)
        return None

    def touch(self, file_name: str) -> Optional[dict]:
        if not _valid_name(file_name):
            return {"error": f"touch: cannot touch '{file_name}': Invalid character"}
        if file_name in self._current_dir.contents:
            return {"error": f"touch: cannot touch '{file_name}': File exists"}
        self._current_dir._new_file(file_name)
        return None

    def echo(self, content: str, file_name: Optional[str] = None) -> Optional[dict]:
        if file_name is None:
            return {"terminal_output": content}
        if not _valid_name(file_name):
            return {"error": f"echo: cannot write to '{file_name}': Invalid character"}
        if not file_name:
            # Quirk: an empty (falsy) file name prints instead of writing.
            return {"terminal_output": content}
        if file_name not in self._current_dir.contents:
            return {"error": f"echo: cannot write to '{file_name}': No such file"}
        target = self._current_dir._lookup(file_name)
        if not isinstance(target, File):
            # The reference calls its file-write helper on whatever it found; on a directory
            # that is an AttributeError naming the helper.
            raise AttributeError(f"'{type(target).__name__}' object has no attribute '_write'")
        target.content = content  # overwrite, whatever the type
        return None

    #: ``cat``'s errors (``{name}``: the file name); a release words them differently
    _CAT_MISSING: ClassVar[str] = "cat: '{name}': No such file or directory"
    _CAT_IS_DIRECTORY: ClassVar[str] = "cat: '{name}': Is a directory"

    def cat(self, file_name: str) -> dict:
        if not _valid_name(file_name):
            return {"error": f"cat: '{file_name}': Invalid character"}
        if file_name not in self._current_dir.contents:
            return {"error": self._CAT_MISSING.format(name=file_name)}
        item = self._current_dir._lookup(file_name)
        if isinstance(item, File):
            return {"file_content": item.content}
        return {"error": self._CAT_IS_DIRECTORY.format(name=file_name)}

    def find(self, path: str = ".", name: Optional[str] = None) -> dict:
        start = self._resolve(path)
        if start is None:
            return {"error": f"find: '{path}': No such file or directory"}
        return self._find_from(start, path, name)

    def _find_from(self, start: Directory, path: str, name: Optional[str]) -> dict:
        """``find``'s matches under ``start``, each prefixed with ``path`` (trailing "/" removed)."""
        base = path.rstrip("/")
        # Two passes: the first raises wherever the reference raises and sizes the output
        # without building any path; the second builds the paths once they are known to fit.
        if self._find_output_size(start, len(base), name) > _FIND_MAX_CHARS:
            return {"error": f"find: '{path}': too many entries to list"}  # hostile input only
        matches = []
        prefixes = [base]  # prefixes[d - 1]: the path of the directory holding depth-d entries
        for item_name, item, depth in self._walk(start):
            item_path = f"{prefixes[depth - 1]}/{item_name}"
            if name is None or name in item_name:
                matches.append(item_path)
            if isinstance(item, Directory):
                del prefixes[depth:]
                prefixes.append(item_path)
        return {"matches": matches}

    def _find_output_size(self, start: Directory, base_length: int, name: Any) -> int:
        """Characters of the matched paths and of the directory paths ``find`` would build.

        Raises what the reference's recursive search raises, in its order: a TypeError from
        ``name in item_name`` or a RecursionError past the depth limit. Returns a size above
        the limit once too many entries were visited (hostile input only).
        """
        total = 0
        lengths = [base_length]
        for visited, (item_name, item, depth) in enumerate(self._walk(start), 1):
            if visited > _WALK_MAX_ENTRIES:
                return _FIND_MAX_CHARS + 1
            label = item_name if type(item_name) is str else f"{item_name}"
            length = lengths[depth - 1] + 1 + len(label)
            if name is None or name in item_name:
                total += length
            if isinstance(item, Directory):
                if depth > _FIND_MAX_DIRECTORY_DEPTH:
                    raise RecursionError(_FIND_RECURSION_MESSAGE)
                total += length
                del lengths[depth:]
                lengths.append(length)
        return total

    def wc(self, file_name: str, mode: str = "l") -> dict:
        if mode not in ["l", "w", "c"]:
            return {"error": f"wc: invalid mode '{mode}'"}
        file = self._local_file(file_name)
        if file is None:
            return {"error": f"wc: {file_name}: No such file or directory"}
        content = file.content
        if mode == "l":
            return {"count": len(content.splitlines()), "type": "lines"}
        if mode == "w":
            return {"count": len(content.split()), "type": "words"}
        return {"count": len(content), "type": "characters"}

    def sort(self, file_name: str) -> dict:
        file = self._local_file(file_name)
        if file is None:
            return {"error": f"sort: {file_name}: No such file or directory"}
        return {"sorted_content": "\n".join(sorted(file.content.splitlines()))}

    def grep(self, file_name: str, pattern: str) -> dict:
        file = self._local_file(file_name)
        if file is None:
            return {"error": f"grep: {file_name}: No such file or directory"}
        return {"matching_lines": [line for line in file.content.splitlines() if pattern in line]}

    def du(self, human_readable: bool = False) -> dict:
        total = 0
        sizes: dict[int, int] = {}  # per File object: shared files are measured once per call
        visited = 0
        for _, item, depth in self._walk(self._current_dir):
            visited += 1
            if visited > _WALK_MAX_ENTRIES:
                return {"error": "du: too many entries to measure"}  # hostile input only
            if depth > _DU_MAX_DEPTH:
                raise RecursionError(_DU_RECURSION_MESSAGE)
            if isinstance(item, File):
                size = sizes.get(id(item))
                if size is None:
                    size = sizes[id(item)] = len(item.content.encode("utf-8"))
                total += size
        if not human_readable:
            return {"disk_usage": f"{total} bytes"}
        amount: Union[int, float] = total
        for unit in _DU_UNITS:
            if amount < 1024:
                return {"disk_usage": f"{amount:.2f} {unit}"}
            amount /= 1024
        return {"disk_usage": f"{amount:.2f} PB"}

    def tail(self, file_name: str, lines: int = 10) -> dict:
        file = self._local_file(file_name)
        if file is None:
            return {"error": f"tail: {file_name}: No such file or directory"}
        all_lines = file.content.splitlines()
        if lines > len(all_lines):
            lines = len(all_lines)
        # Quirk: a count of 0 gives everything (-0 == 0) and a negative one drops that many
        # lines from the front.
        return {"last_lines": "\n".join(all_lines[-lines:])}

    def diff(self, file_name1: str, file_name2: str) -> dict:
        here = self._current_dir
        if file_name1 in here.contents and file_name2 in here.contents:
            first, second = here._lookup(file_name1), here._lookup(file_name2)
            if isinstance(first, File) and isinstance(second, File):
                # Quirk: pairwise over the shorter file only.
                changed = [
                    f"- {old}\n+ {new}"
                    for old, new in zip(first.content.splitlines(), second.content.splitlines())
                    if old != new
                ]
                return {"diff_lines": "\n".join(changed)}
        return {"error": f"diff: {file_name1} or {file_name2}: No such file or directory"}

    def mv(self, source: str, destination: str) -> dict:
        here = self._current_dir
        if source not in here.contents:
            return {"error": f"mv: cannot move '{source}': No such file or directory"}
        item = here._lookup(source)
        if "/" in destination:
            return {"error": "mv: path not allowed in destination. Provide only a file or directory name."}
        if destination in here.contents:
            target = here._lookup(destination)
            if not isinstance(target, Directory):
                return {"error": f"mv: cannot move '{source}' to '{destination}': Not a directory"}
            if source in target.contents:
                return {"error": f"mv: cannot move '{source}' to '{destination}/{source}': File exists"}
            here.contents.pop(source)
            self._recreate(item, target, source, copy=False)
            return {"result": f"'{source}' moved to '{destination}/{source}'"}
        here.contents.pop(source)
        self._recreate(item, here, destination, copy=False)
        return {"result": f"'{source}' moved to '{destination}'"}

    def rm(self, file_name: str) -> dict:
        if file_name not in self._current_dir.contents:
            return {"error": f"rm: cannot remove '{file_name}': No such file or directory"}
        # Quirk: directories go too, empty or not.
        self._current_dir.contents.pop(file_name)
        return {"result": f"'{file_name}' removed"}

    def rmdir(self, dir_name: str) -> dict:
        here = self._current_dir
        if dir_name not in here.contents:
            return {"error": f"rmdir: cannot remove '{dir_name}': No such file or directory"}
        item = here._lookup(dir_name)
        if not isinstance(item, Directory):
            return {"error": f"rmdir: cannot remove '{dir_name}': Not a directory"}
        if item.contents:
            return {"error": f"rmdir: cannot remove '{dir_name}': Directory not empty"}
        here.contents.pop(dir_name)
        return {"result": f"'{dir_name}' removed"}

    def cp(self, source: str, destination: str) -> dict:
        here = self._current_dir
        if source not in here.contents:
            return {"error": f"cp: cannot copy '{source}': No such file or directory"}
        item = here._lookup(source)
        if "/" in destination:
            return {"error": "cp: path not allowed in destination. Provide only a file or directory name."}
        if destination in here.contents:
            target = here._lookup(destination)
            if not isinstance(target, Directory):
                return {"error": f"cp: cannot copy '{source}' to '{destination}': Not a directory"}
            # Quirk: the clash test looks for the key "destination/source", which never
            # exists, so a real clash surfaces as the ValueError of the creation below.
            if f"{destination}/{source}" in target.contents:
                return {"error": f"cp: cannot copy '{source}' to '{destination}/{source}': File exists"}
            self._recreate(item, target, source, copy=True)
            return {"result": f"'{source}' copied to '{destination}/{source}'"}
        self._recreate(item, here, destination, copy=True)
        return {"result": f"'{source}' copied to '{destination}'"}

    @staticmethod
    def _recreate(item: Union[File, Directory], into: Directory, name: Any, copy: bool) -> None:
        """Put a new File/Directory called ``name`` into ``into`` that carries ``item``'s data.

        A file gets the same content. A directory is a new object whose contents dict is
        ``item``'s own dict (move) or a shallow copy of it (copy), assigned after the new
        directory is linked in: the children are not re-parented, and moving or copying a
        directory into itself makes it contain itself, exactly as in the reference.
        """
        if isinstance(item, File):
            into._new_file(name, item.content)
            return
        created = into._new_directory(name)
        created.contents = item.contents.copy() if copy else item.contents
