"""The Tahiry client: `python -m nodes.client` and a DB-API 2.0 driver.

    import nodes.client
    with nodes.client.connect("127.0.0.1", 3951) as connection:
        cursor = connection.cursor()
        cursor.execute("alaivo * ao@ mpianatra rehefa kilasy = ?", ("L3",))
        print(cursor.description, cursor.fetchall())

See `driver.py` for the DB-API, `cli.py` for the command line.
"""

from nodes.client.driver import (  # noqa: F401 (the PEP 249 module interface)
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Connection,
    Cursor,
    DatabaseError,
    DataError,
    Date,
    DateFromTicks,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
