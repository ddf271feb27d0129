"""The language: statement text -> syntax tree.

`lexer` (tokens, Malagasy keywords; the words that mean something past the
parser, each mapping defined once, are the shared leaf `engine.vocabulary`),
`parser` (SLY grammar -> `ast` nodes), `parse_loop` and `script`/`script_source` (splitting a text or a
file into statements), `literal_rows` and `statement_cache` (fast paths that
build the same tree as the parser without parsing), `classify` (read or
write, and which objects a statement touches); `ast.walk`/`ast.transform`
go over a tree. `messages` is the catalogue of every error text (stable
code, Malagasy wire template, English; `translate` for clients), `hints`
the "did you mean" sentence an error may end with, and `english` the
English SQL keywords with their Malagasy words. Depends on nothing else of the engine but the shared leaves
`engine.errors`, `engine.lru` and `engine.vocabulary`.
"""
