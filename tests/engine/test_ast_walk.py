"""engine.language.ast.walk / transform: the one generic way over a syntax tree."""

from __future__ import annotations

from engine.language import ast
from engine.language.parser import StatementParser


def _query(text: str) -> ast.SelectExpr:
    statement = StatementParser().parse(text)
    assert isinstance(statement, ast.Query)
    return statement.select


def test_walk_yields_every_node_depth_first_in_field_order():
    select = _query("alaivo a + 1, count(b) ao@ t tonona@ u rehefa c = 'x'")
    kinds = [type(node).__name__ for node in ast.walk(select)]
    assert kinds[0] == "SelectCore"
    refs = [node.name for node in ast.walk(select) if isinstance(node, ast.ColumnRef)]
    assert refs == ["a", "b", "c"]
    tables = [node.name for node in ast.walk(select) if isinstance(node, ast.TableSource)]
    assert tables == ["t", "u"]
    assert list(ast.walk(None)) == [] and list(ast.walk("leaf")) == []


def test_walk_does_not_recurse_on_deep_trees():
    expr: ast.Expr = ast.Literal(0)
    for _ in range(20_000):
        expr = ast.Unary("-", expr)
    assert sum(1 for _ in ast.walk(expr)) == 20_001


def test_transform_replaces_nodes_and_shares_what_it_did_not_change():
    tree = ast.Binary("+", ast.ColumnRef("a"), ast.FunctionCall("sum", (ast.ColumnRef("a"),)))

    def rename(node):
        if isinstance(node, ast.ColumnRef):
            return ast.ColumnRef("z")
        if isinstance(node, ast.FunctionCall):
            return node  # not gone into
        return None

    new = ast.transform(tree, rename)
    assert new == ast.Binary("+", ast.ColumnRef("z"), tree.right)
    assert new.right is tree.right
    assert ast.transform(tree, lambda node: None) is tree
    assert list(ast.children(tree)) == ["+", tree.left, tree.right]
