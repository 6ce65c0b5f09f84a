"""GorillaFileSystem as bfcl-eval 2025.10.2 behaves (see ``docs/data-versions.md``).

Overridden: ``cd`` (walks any path, nested or absolute; other error texts, "Cuurent" typo),
``echo`` (creates a missing file), ``find`` (searches the current directory whatever ``path``
says), and the error texts of ``cat``, ``mv``, ``cp`` and ``rmdir``. Everything else is the
default release's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from envs.file_system import Directory, _valid_name
from envs.file_system import GorillaFileSystem as GorillaFileSystemNow
from envs.v2025_10_2 import VERSION


class GorillaFileSystem(GorillaFileSystemNow):
    """GorillaFileSystem of bfcl-eval 2025.10.2."""

    data_version: ClassVar[str] = VERSION

    def cd(self, folder: str) -> dict:
        # 2025.10.2: the folder is taken as given (no trailing "/" stripped, no nesting check)
        if folder == "..":
            parent = self._current_dir.parent
            if parent:
                self._current_dir = parent
                return {}
            if self.root == self._current_dir:
                return {"error": "Cuurent directory is already the root. Cannot go back."}  # sic
            return {"error": "cd: ..: No such directory"}
        # 2025.10.2: a multi-level or absolute path is walked like any other
        target = self._resolve(folder)
        if target is None:
            return {"error": f"cd: {folder}: No such directory. You cannot use path to change directory."}
        self._current_dir = target
        return {"current_working_directory": target.name}

    def echo(self, content: str, file_name: Optional[str] = None) -> Optional[dict]:
        if file_name is None:
            return {"terminal_output": content}
        if not _valid_name(file_name):
            return {"error": f"echo: cannot touch '{file_name}': Invalid character"}
        if file_name and file_name not in self._current_dir.contents:
            # 2025.10.2: writing to a missing file creates it
            self._current_dir._new_file(file_name, content)
            return None
        return super().echo(content, file_name)

    # 2025.10.2: the name is not quoted in the "no such file" and "is a directory" errors
    _CAT_MISSING: ClassVar[str] = "cat: {name}: No such file or directory"
    _CAT_IS_DIRECTORY: ClassVar[str] = "cat: {name}: Is a directory"

    def find(self, path: str = ".", name: Optional[str] = None) -> dict:
        # 2025.10.2: `path` is never resolved; the current directory is searched and `path`
        # (trailing "/" removed) only prefixes the results, so a missing path is no error.
        return self._find_from(self._current_dir, path, name)

    def mv(self, source: str, destination: str) -> dict:
        # 2025.10.2: another text for a path in the destination (checked after the source)
        if source in self._current_dir.contents and "/" in destination:
            return {
                "error": "mv: no path allowed in destination. "
                "Only file name and folder name is supported for this operation."
            }
        return super().mv(source, destination)

    def cp(self, source: str, destination: str) -> dict:
        # 2025.10.2: another text for a path in the destination (checked after the source)
        if source in self._current_dir.contents and "/" in destination:
            return {
                "error": "cp: don't allow path in destination. "
                "Only file name and folder name is supported for this operation."
            }
        return super().cp(source, destination)

    def rmdir(self, dir_name: str) -> dict:
        # 2025.10.2: "failed to remove" (not "cannot remove") for a non-empty directory
        if dir_name in self._current_dir.contents:
            item: Any = self._current_dir._lookup(dir_name)
            if isinstance(item, Directory) and item.contents:
                return {"error": f"rmdir: failed to remove '{dir_name}': Directory not empty"}
        return super().rmdir(dir_name)
