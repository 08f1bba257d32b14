"""Flags for a person to look at: constructs in a student file that solving the
assignment never needs and attacking the grader often does.

A flag is not a verdict and costs no points: it is recorded in results.json
(`extra_data.review`) and the class gradebook so that the instructor reads the
file. The scan reads the source (ast), never runs it.
"""

from __future__ import annotations

import ast

DYNAMIC_CODE = {"exec", "eval", "compile", "__import__"}
PROCESS_CALLS = {"fork", "forkpty", "setsid", "daemon", "kill", "killpg", "system", "popen",
                 "execv", "execve", "execvp", "spawn", "_exit"}
SUSPICIOUS_MODULES = {"ctypes", "subprocess", "multiprocessing", "socket", "signal", "gc",
                      "inspect", "importlib", "builtins", "pickle", "marshal", "mmap"}
GUARDED_ROOTS = {"torch", "sys", "builtins", "__main__", "hypothesis", "pytest", "numpy",
                 "triton", "os", "_wire", "_worker_main"}   # the last two: the worker's own


def review_flags(source: str, provided_modules: tuple[str, ...] = ()) -> list[str]:
    """'line N: what' for each suspicious construct, in line order (empty: nothing)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as error:
        return [f"does not parse: {error}"]
    flags = []
    guarded = GUARDED_ROOTS | set(provided_modules)
    guarded |= {alias for alias, module in _aliases(tree).items() if module in guarded}
    for node in ast.walk(tree):
        what = _flag(node, guarded)
        if what:
            flags.append((node.lineno, what))
    return [f"line {line}: {what}" for line, what in sorted(set(flags))]


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the top-level module it stands for (`import torch.distributed as
    dist` makes dist stand for torch)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = node.module.split(".")[0]
    return names


def _flag(node: ast.AST, guarded: set[str]) -> str | None:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
            a.name for a in node.names]
        hit = sorted({n.split(".")[0] for n in names} & SUSPICIOUS_MODULES)
        return f"imports {', '.join(hit)}" if hit else None
    if isinstance(node, ast.Call):
        name = _called_name(node.func)
        if name in DYNAMIC_CODE:
            return f"calls {name}()"
        if name in PROCESS_CALLS:
            return f"calls {name}() (processes or signals)"
        if name == "setattr" and node.args and _root(node.args[0]) in guarded:
            return f"setattr() on {_root(node.args[0])}"
        return None
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            root = _root(target)
            if isinstance(target, (ast.Attribute, ast.Subscript)) and root in guarded:
                return f"changes {ast.unparse(target)}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _mentions_proc(node):
        return "mentions /proc"
    if isinstance(node, ast.Attribute) and node.attr == "modules" and _root(node) == "sys":
        return "uses sys.modules"
    return None


def _called_name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _root(node: ast.AST) -> str:
    """The name an attribute or subscript chain starts from: torch for torch.Tensor.__eq__."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _mentions_proc(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.startswith("/proc"))
