"""``--cfg-options`` that also reads ``key=dict(a=1, b='x')`` values.

mmengine's ``DictAction`` reads numbers, booleans, None, lists and tuples, and keeps anything
else as a string: ``model.pskd=dict(alpha_t=0.5)`` reached the model as the string
``'dict(alpha_t=0.5)'`` (reported as unknown keys ``['(', ')', ...]``). Values that contain
``dict(`` or start with ``{`` are read here instead, without running any code: ``dict(...)``
with keyword arguments and ``{...}`` literals whose values are numbers, strings, True / False
/ None, lists, tuples or such dicts; a bare word is a string, as DictAction reads it. Anything
else is refused with the same settings in dotted form (``model.pskd.alpha_t=0.5``), which
DictAction reads.
"""
import argparse
import ast
from typing import Any, Optional

from mmengine.config import DictAction


class _Unreadable(ValueError):
    pass


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
        return node.value
    if isinstance(node, ast.Name):  # an unquoted word, as DictAction reads it
        return node.id
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    raise _Unreadable(ast.dump(node))


def _dotted(key: str, text: str, tree: Optional[ast.AST]) -> str:
    """``key=dict(a=1, b=2)`` as ``key.a=1 key.b=2`` where the keywords can be told."""
    if (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == 'dict' and not tree.args and tree.keywords
            and all(kw.arg is not None for kw in tree.keywords)):
        return ' '.join(f'{key}.{kw.arg}={ast.get_source_segment(text, kw.value)}'
                        for kw in tree.keywords)
    return f'{key}.<key>=<value>'


def parse_dict_value(key: str, text: str) -> Any:
    """The value of ``--cfg-options key=text`` when ``text`` holds a dict.

    Raises:
        ValueError: ``text`` is not such a literal; the message shows the dotted form.
    """
    tree = None
    try:
        tree = ast.parse(text.strip(), mode='eval').body
        return _literal(tree)
    except (SyntaxError, _Unreadable):
        raise ValueError(
            f'--cfg-options {key}={text}: only dict(key=value, ...) of numbers, strings, '
            'True/False/None, lists, tuples and dicts can be read here; or set each key in '
            f'dotted form, e.g. {_dotted(key, text.strip(), tree)}') from None


def _holds_dict(text: str) -> bool:
    return 'dict(' in text.replace(' ', '') or text.strip().startswith('{')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction``, plus ``key=dict(...)`` / ``key={...}`` values (module
    docstring); an unreadable one is an argparse error showing the dotted form."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values, option_string: Optional[str] = None) -> None:
        super().__call__(parser, namespace, [], option_string)  # {} or the earlier options
        for kv in values or []:  # in order: a later value of a key wins, as in DictAction
            key, _, text = kv.partition('=')
            if not _holds_dict(text):
                super().__call__(parser, namespace, [kv], option_string)
                continue
            try:
                getattr(namespace, self.dest)[key] = parse_dict_value(key, text)
            except ValueError as e:
                parser.error(str(e))
