"""The evaluation: a syntax tree run against the stored objects.

`executor` runs one statement (DDL, DML, queries) on a `Store`; `query`,
`relational`, `expressions`, `equality_lookup` and `code_cache` evaluate
queries; `values` holds the value semantics, `domains` the column types,
`catalog` a database's tables and views, `describe` their columns
(`asehoy ny tsanganana`), `outcome` what a statement gives back and
`render` how it is drawn. Depends on `engine.language` (the tree)
and `engine.storage` (the files), never the other way round.
"""
