"""A lean LALR driver over the tables SLY builds for a grammar.

SLY's own `Parser.parse` is generic: it records every reduced value's line
and span in two dictionaries, sets two attributes per reduction through a
Python-level `__setattr__`, builds untyped symbol objects and supports error
recovery. Profiling showed that loop to be most of a statement's parse time.
This driver walks the very same action, goto and default-reduction tables
and calls the very same rule functions, so it accepts the same language,
builds the same AST and detects each error in the same state (hence the same
message): it only leaves out what this project never uses (line numbers,
the position dictionaries, error recovery: the grammar's `error()` always
raises). Symbols keep `type`, `value`, `index` and `end`, which the rules
and `error()` read.
"""

from __future__ import annotations

from sly.yacc import YaccProduction


class Symbol:
    """A reduced grammar symbol (a token from the lexer plays the same part)."""

    __slots__ = ("type", "value", "index", "end")
    # Declared for the type checker only: with __slots__ these create no class attributes.
    type: str
    value: object
    index: int | None
    end: int | None


class _Production(YaccProduction):
    """SLY's rule argument `p`, without the checked attribute assignment."""

    __slots__ = ()
    __setattr__ = object.__setattr__


def _tables(parser_class) -> tuple[list, list, list]:
    """Per state: its default reduction (int) or its action dict; the goto
    dicts; per production: (function, name, length, name map). Cached on the class."""
    tables = parser_class.__dict__.get("_lean_tables")
    if tables is None:
        lrtable = parser_class._lrtable
        states = len(lrtable.lr_action)
        by_state = [lrtable.defaulted_states.get(state, lrtable.lr_action[state])
                    for state in range(states)]
        goto = [lrtable.lr_goto.get(state, {}) for state in range(states)]
        productions = [(p.func, p.name, p.len, p.namemap)
                       for p in parser_class._grammar.Productions]
        tables = parser_class._lean_tables = (by_state, goto, productions)
    return tables


def run(parser, tokens):
    """Parse the token iterator with `parser`'s tables; the start rule's value.

    Like SLY, `parser.symstack` and `parser.statestack` are the live stacks;
    `parser.state` is set when `error()` is called (the rules never read it),
    and `parser.states_before_lookahead` is the state stack from before the
    reductions the erroneous token made.
    """
    by_state, goto, productions = _tables(type(parser))

    bottom = Symbol()
    bottom.type = "$end"
    statestack = [0]
    symstack: list = [bottom]  # Symbols and the lexer's tokens (the same four attributes)
    parser.statestack = statestack
    parser.symstack = symstack
    parser.state = state = 0
    argument = _Production(None)
    argument._stack = symstack

    lookahead = None
    while True:
        action = by_state[state]
        if action.__class__ is dict:
            if lookahead is None:
                lookahead = next(tokens, None)
                if lookahead is None:
                    lookahead = Symbol()
                    lookahead.type = "$end"
                # (The reductions this token triggers may end in an error: what could have
                # come instead is read from the states before them.)
                parser.states_before_lookahead = statestack.copy()
            action = action.get(lookahead.type)
            if action is None:
                parser.state = state
                parser.error(None if lookahead.type == "$end" else lookahead)
                return None  # error() raises; a None result is reported by the caller

        if action > 0:  # shift
            statestack.append(action)
            symstack.append(lookahead)
            state = action
            lookahead = None
        elif action < 0:  # reduce
            function, name, length, namemap = productions[-action]
            symbol = Symbol()
            symbol.type = name
            if length:
                pieces = symstack[-length:]
                symbol.index = pieces[0].index
                symbol.end = pieces[-1].end
                argument._slice = pieces
                argument._namemap = namemap
                symbol.value = function(parser, argument)
                del symstack[-length:]
                del statestack[-length:]
            else:
                symbol.index = symbol.end = None
                argument._slice = []
                argument._namemap = namemap
                symbol.value = function(parser, argument)
            symstack.append(symbol)
            state = goto[statestack[-1]][name]
            statestack.append(state)
        else:  # accept
            parser.state = state
            return symstack[-1].value
